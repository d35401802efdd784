//go:build linux

package pgtest

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill the postmaster when the test
// binary dies without stopping it (a panic, a -timeout, SIGKILL). Go sets
// it after switching credentials, so it holds for the postgres user too.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
