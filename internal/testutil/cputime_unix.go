//go:build unix

package testutil

import (
	"syscall"
	"time"
)

// CPUTime returns the CPU time this process has used, user and system, all
// threads. On a shared machine it says more about cost than wall time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
