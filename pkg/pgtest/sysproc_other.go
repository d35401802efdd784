//go:build !linux

package pgtest

import "os/exec"

// setParentDeathSignal does nothing outside Linux: Main stops the cluster.
func setParentDeathSignal(*exec.Cmd) {}
