package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"
)

// ScrapeErrorLog is promhttp's HandlerOpts.ErrorLog for a /metrics
// endpoint: a scraper that hangs up mid-response (a timeout, a restart,
// curl | head) is not the sidecar's fault and logs at debug level; any
// other error (a collector that fails, an invalid metric) stays an ERROR.
func ScrapeErrorLog(log *slog.Logger) *ScrapeLog { return &ScrapeLog{log: log} }

// ScrapeLog implements promhttp.Logger.
type ScrapeLog struct{ log *slog.Logger }

// Println logs one promhttp error.
func (l *ScrapeLog) Println(v ...any) {
	msg := fmt.Sprint(v...)
	for _, a := range v {
		if err, ok := a.(error); ok && ClientGone(err) {
			l.log.Debug("metrics scraper hung up mid-response", "error", err)
			return
		}
	}
	l.log.Error(msg)
}

// ClientGone reports whether err says only that the client went away:
// the connection reset or closed under a write, or the request cancelled.
func ClientGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) ||
		errors.Is(err, http.ErrHandlerTimeout) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, http.ErrAbortHandler)
}
