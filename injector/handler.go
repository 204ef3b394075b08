package injector

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

// MaxBodyBytes bounds one AdmissionReview. The API server sends objects of
// at most ~1.5 MiB (etcd's limit), but a pod spec is far smaller.
const MaxBodyBytes = 1 << 20

// Handler serves POST /mutate. Answers: 200 with an AdmissionReview for
// every decodable review (a refusal is allowed=false inside it), 400 for
// malformed JSON or a review without a request, 413 above MaxBodyBytes,
// 415 for a content type other than application/json.
func (in *Injector) Handler(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /mutate", func(w http.ResponseWriter, r *http.Request) {
		in.serveMutate(w, r, log)
	})
	return mux
}

func (in *Injector) serveMutate(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	start := time.Now()
	fail := func(status int, err error) {
		in.metrics.Decision("", Refused, BadRequest, time.Since(start))
		log.Warn("admission request rejected", "decision", Refused, "reason", BadRequest, "status", status, "error", err)
		http.Error(w, err.Error(), status)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		fail(http.StatusUnsupportedMediaType, fmt.Errorf("content type %q: want application/json", r.Header.Get("Content-Type")))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			fail(http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", MaxBodyBytes))
			return
		}
		fail(http.StatusBadRequest, fmt.Errorf("reading the body: %w", err))
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		fail(http.StatusBadRequest, fmt.Errorf("not an AdmissionReview: %w", err))
		return
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" || review.Request == nil {
		fail(http.StatusBadRequest, fmt.Errorf("want an admission.k8s.io/v1 AdmissionReview with a request, got %s %s", review.APIVersion, review.Kind))
		return
	}
	req := review.Request
	d := in.Mutate(req)
	out, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: d.Response})
	if err != nil {
		// Not expected: the response is made of plain types.
		fail(http.StatusInternalServerError, fmt.Errorf("encoding the response: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)

	took := time.Since(start)
	in.metrics.Decision(d.Namespace, d.Outcome, d.Reason, took)
	attrs := []any{
		"decision", d.Outcome, "reason", d.Reason, "uid", req.UID, "namespace", d.Namespace, "pod", d.Pod,
		"operation", req.Operation, "dry_run", req.DryRun != nil && *req.DryRun, "duration", took,
	}
	switch {
	case d.Outcome == Refused && d.Response.Result != nil:
		log.Warn("pod refused", append(attrs, "message", d.Response.Result.Message)...)
	case d.Outcome == Injected:
		log.Info("sidecar injected", attrs...)
	default:
		log.Info("pod left alone", attrs...)
	}
}
