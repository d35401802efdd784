package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// EnvVar chooses the stack: local, containers or auto (the default).
const EnvVar = "CONSENTGATE_E2E_STACK"

// probeTimeout bounds the Docker probe: an engine that does not answer
// within it counts as absent.
const probeTimeout = 3 * time.Second

// Choice is the stack to start and why.
type Choice struct {
	Kind   Kind
	Reason string // for the log line, e.g. "auto: no Docker engine: ..."
}

// LookupEnv returns CONSENTGATE_E2E_STACK ("" when unset).
func LookupEnv() string { return os.Getenv(EnvVar) }

// Choose picks the stack from the value of CONSENTGATE_E2E_STACK and, when
// it needs to know, whether a Docker engine answers (probe returns nil):
//
//	""/"auto"    containers if the probe succeeds, else local
//	"local"      local; the probe is not run
//	"containers" containers; an error if the probe fails (a run that asked
//	             for real Apache Kafka never falls back to the devbroker)
//
// Any other value is an error that says what to set.
func Choose(value string, probe func() error) (Choice, error) {
	switch value {
	case "", "auto":
		if err := probe(); err != nil {
			return Choice{KindLocal, "auto: no Docker engine: " + oneLine(err)}, nil
		}
		return Choice{KindContainers, "auto: a Docker engine answers"}, nil
	case string(KindLocal):
		return Choice{KindLocal, EnvVar + "=local"}, nil
	case string(KindContainers):
		if err := probe(); err != nil {
			return Choice{}, fmt.Errorf("%s=containers, but no Docker engine answers (%s); start Docker (or point DOCKER_HOST at one), or set %s=local or auto",
				EnvVar, oneLine(err), EnvVar)
		}
		return Choice{KindContainers, EnvVar + "=containers"}, nil
	default:
		return Choice{}, fmt.Errorf("%s=%q is not a stack: set it to local (devbroker and redis-server processes), containers (Apache Kafka and Redis in Docker) or auto (containers when a Docker engine answers, else local; the default)",
			EnvVar, value)
	}
}

// oneLine keeps a probe error on one line of the test log.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

var (
	probeOnce sync.Once
	probeErr  error
)

// DockerProbe reports whether a Docker engine answers, with testcontainers'
// own check (the provider's Health: an Info call), within probeTimeout. It
// runs once per test binary; later calls return the first answer.
func DockerProbe() error {
	probeOnce.Do(func() { probeErr = dockerHealth(probeTimeout) })
	return probeErr
}

func dockerHealth(timeout time.Duration) (err error) {
	defer func() {
		// testcontainers panics on some broken Docker set-ups; that is
		// "no engine" too.
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers: %v", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("testcontainers: %v", r)
			}
		}()
		p, err := testcontainers.NewDockerProvider()
		if err != nil {
			done <- err
			return
		}
		done <- p.Health(ctx) // Health closes the provider
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errors.New("no answer within " + timeout.String())
	}
}
