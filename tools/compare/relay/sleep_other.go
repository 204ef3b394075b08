//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package relay

import "time"

// sleep waits d; here to the precision of the Go runtime's timers.
func sleep(d time.Duration) { time.Sleep(d) }
