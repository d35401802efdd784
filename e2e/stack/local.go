package stack

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// Local is the stack of local processes: the devbroker (pkg/brokertest) and
// a redis-server (pkg/redistest), stopped when the test ends.
type Local struct {
	broker      *brokertest.Broker
	redis       *redistest.Server
	restartable bool
}

// StartLocal starts a devbroker with DefaultTopics and o.Topics, and a
// redis-server.
func StartLocal(t testing.TB, o Options) *Local {
	t.Helper()
	o = o.withDefaults()
	bo := brokertest.Options{Partitions: o.Partitions, Topics: o.Topics}
	if o.RestartableBroker {
		bo.DataDir = t.TempDir()
	}
	return &Local{broker: brokertest.Start(t, bo), redis: redistest.Start(t), restartable: o.RestartableBroker}
}

func (l *Local) Name() string { return string(KindLocal) }

func (l *Local) Describe() string {
	return fmt.Sprintf("devbroker process (kfake) at %s, redis-server process at %s", l.broker.Addr, l.redis.Addr())
}

func (l *Local) Brokers() []string          { return []string{l.broker.Addr} }
func (l *Local) Broker() *brokertest.Broker { return l.broker }

func (l *Local) CreateTopics(t testing.TB, partitions int, topics ...string) {
	t.Helper()
	l.broker.CreateTopics(t, partitions, topics...)
}

// RestartBroker stops the devbroker with SIGTERM (which flushes its log)
// and starts it again on the same port and data directory.
func (l *Local) RestartBroker(t testing.TB) {
	t.Helper()
	if !l.restartable {
		t.Fatal("local stack: RestartBroker needs Options.RestartableBroker (the devbroker keeps its log only in a data directory)")
	}
	l.broker.Restart()
}

func (l *Local) RedisAddr() string                      { return l.redis.Addr() }
func (l *Local) RedisClient(t testing.TB) *redis.Client { return l.redis.Client(t) }
func (l *Local) StopRedis(testing.TB)                   { l.redis.Stop() }
func (l *Local) RestartRedis(testing.TB)                { l.redis.Restart() }
func (l *Local) LocalRedis() *redistest.Server          { return l.redis }
