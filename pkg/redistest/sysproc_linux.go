//go:build linux

package redistest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill redis-server when the test binary
// dies without running its cleanups (a panic, a -timeout, SIGKILL).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
