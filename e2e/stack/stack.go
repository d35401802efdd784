// Package stack is the infrastructure under the e2e suite: a Kafka broker
// and a Redis server, as local processes or as containers.
//
// Two implementations of one interface ([Stack]):
//
//   - [Local]: the devbroker process (franz-go's kfake, services/devbroker,
//     through pkg/brokertest) and a redis-server process (pkg/redistest),
//     both on free 127.0.0.1 ports. Needs redis-server on PATH, nothing else.
//   - [Containers]: Apache Kafka (apache/kafka, one combined broker and
//     controller in KRaft mode) and Redis, started with testcontainers-go.
//     Needs a Docker engine.
//
// [Start] chooses by itself (a Docker engine answers: containers, else
// local), unless CONSENTGATE_E2E_STACK forces one (see [Choose]), and logs
// which one it used and why. The services under test run as host processes
// in both cases and reach the broker and Redis through 127.0.0.1 ports that
// stay the same across a restart of either.
package stack

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// Kind names an implementation.
type Kind string

const (
	KindLocal      Kind = "local"
	KindContainers Kind = "containers"
)

// DefaultTopics are the pipeline's topics that the devbroker creates at
// start (services/devbroker/config.go, DefaultTopics; a test of this
// package compares the two). The container stack creates the same ones,
// so that both stacks start with the same topics and partition counts.
var DefaultTopics = []string{
	"customer.events",
	"customer.events.dlq",
	"consent.changes",
	"consent.audit",
	"consent.revocations",
	"consent.audit.checkpoints",
}

// Options size a stack.
type Options struct {
	// Partitions of every topic created at start (and of topics created
	// on first use); default 3, the devbroker's default.
	Partitions int
	// Topics are created at start, in addition to DefaultTopics.
	Topics []string
	// RestartableBroker keeps the broker's log across RestartBroker. The
	// local devbroker keeps it only with a data directory, which this
	// turns on; a container keeps its file system across a stop and
	// start, so the container stack always keeps it.
	RestartableBroker bool
}

func (o Options) withDefaults() Options {
	if o.Partitions == 0 {
		o.Partitions = 3
	}
	return o
}

// Stack is what the e2e tests need from the infrastructure.
//
// Every method that can fail calls t.Fatal of the test that started the
// stack. Addresses never change during a test, across restarts included:
// the services under test keep the KAFKA_BROKERS and REDIS_ADDR they were
// started with and reconnect by themselves.
type Stack interface {
	// Name is "local" or "containers".
	Name() string
	// Describe says what runs where, for the test log.
	Describe() string

	// Brokers are the Kafka bootstrap addresses (host:port).
	Brokers() []string
	// Broker is a pkg/brokertest handle on the broker, for the helpers of
	// the e2e package that read topics with it (ReadAll, CreateTopics,
	// Addr). On the container stack it is a client-only handle: its
	// Restart must not be called; call RestartBroker.
	Broker() *brokertest.Broker
	// CreateTopics creates topics with the given partition count
	// (replication factor 1).
	CreateTopics(t testing.TB, partitions int, topics ...string)
	// RestartBroker stops the broker cleanly and starts it again on the
	// same address with its log kept (Options.RestartableBroker on the
	// local stack), and waits until it answers.
	RestartBroker(t testing.TB)

	// RedisAddr is Redis' host:port, for REDIS_ADDR.
	RedisAddr() string
	// RedisClient is a new go-redis client of the server, closed when t
	// ends.
	RedisClient(t testing.TB) *redis.Client
	// StopRedis kills the Redis server; its data is lost (persistence is
	// off on both stacks). Clients see connection errors until
	// RestartRedis.
	StopRedis(t testing.TB)
	// RestartRedis starts Redis again, empty, on the same address (killing
	// it first if it runs), and waits until it answers PING.
	RestartRedis(t testing.TB)
	// LocalRedis is the redis-server process of the local stack, for what
	// only a process allows (SIGSTOP, snapshots); nil on the container
	// stack.
	LocalRedis() *redistest.Server
}

// Start starts the stack that CONSENTGATE_E2E_STACK and the Docker probe
// choose (see [Choose]) and logs which one it is and why, for instance
// "e2e stack: local (auto: no Docker engine: ...)". A bad setting, or
// containers forced without a Docker engine, fails the test.
func Start(t *testing.T, o Options) Stack {
	t.Helper()
	c, err := Choose(LookupEnv(), DockerProbe)
	if err != nil {
		t.Fatalf("e2e stack: %v", err)
	}
	return StartKind(t, c, o)
}

// StartKind starts the stack of c and logs it.
func StartKind(t *testing.T, c Choice, o Options) Stack {
	t.Helper()
	var s Stack
	switch c.Kind {
	case KindLocal:
		s = StartLocal(t, o)
	case KindContainers:
		s = StartContainers(t, o)
	default:
		t.Fatalf("e2e stack: unknown kind %q", c.Kind)
	}
	t.Logf("e2e stack: %s (%s): %s", s.Name(), c.Reason, s.Describe())
	return s
}
