//go:build !linux

package redistest

import "os/exec"

// setParentDeathSignal does nothing outside Linux: the cleanup registered by
// Start stops the process.
func setParentDeathSignal(*exec.Cmd) {}
