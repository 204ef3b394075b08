//go:build linux || darwin || freebsd || netbsd || openbsd

package relay

import (
	"syscall"
	"time"
)

// sleep waits d in a nanosleep(2) of its own. The Go runtime's timers wake
// a program with nothing else to do only to the millisecond (its netpoller
// waits in whole milliseconds), which would turn a 0.5 ms round trip into
// about 2.5 ms; nanosleep wakes within tens of microseconds. The thread is
// blocked meanwhile, and the runtime hands its P to another.
func sleep(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	for {
		var left syscall.Timespec
		if err := syscall.Nanosleep(&ts, &left); err != syscall.EINTR {
			return
		}
		ts = left
	}
}
