// Package statuswriter records the status code an http.Handler answered
// with, for the access log, the request span and the dev issuer's metrics.
package statuswriter

import "net/http"

// Writer wraps a ResponseWriter and remembers the first final status
// written. Unwrap lets http.ResponseController (which ReverseProxy uses to
// flush and to hijack for upgrades) reach the server's writer.
type Writer struct {
	http.ResponseWriter
	code int
}

// New wraps w.
func New(w http.ResponseWriter) *Writer { return &Writer{ResponseWriter: w} }

func (w *Writer) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *Writer) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Status is the code sent. A handler that wrote nothing sent 200 (net/http
// answers 200; a canceled upstream call writes nothing at all).
func (w *Writer) Status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
