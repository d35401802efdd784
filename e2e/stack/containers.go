package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"github.com/testcontainers/testcontainers-go"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/redistest"
)

// The images, pinned to the tags docker-compose.yml runs (a test of this
// package compares them).
const (
	KafkaImage = "apache/kafka:3.9.1"
	RedisImage = "redis:7.4.2-alpine"
)

const (
	// kafkaPort is the container port of the PLAINTEXT listener that the
	// test process and the services reach through the host.
	kafkaPort = "9092/tcp"
	redisPort = "6379/tcp"
	// kafkaClusterID is the KRaft cluster id the storage is formatted
	// with (any base64 UUID; one container is one cluster).
	kafkaClusterID = "Y29uc2VudGdhdGUtZTJlLQ"
	// kafkaStartTimeout bounds the first start of the stack (image pulls
	// included).
	kafkaStartTimeout = 5 * time.Minute
	// readyTimeout bounds the wait for the broker or Redis to answer after
	// a restart.
	readyTimeout = 90 * time.Second
	// brokerStopTimeout is the grace period of a broker stop (SIGTERM,
	// controlled shutdown) before Docker kills it.
	brokerStopTimeout = 30 * time.Second
	// bindAttempts bounds the retries when the host port picked for a
	// container is taken before Docker binds it.
	bindAttempts = 3
)

// Containers is the stack of containers: Apache Kafka in KRaft mode and
// Redis, removed when the test ends.
//
// Port mapping: each container port is published on a host port picked
// once (a free port of the host) and fixed in the container's port
// bindings, instead of Docker's usual random port, which changes at every
// start of the container. The broker advertises exactly that host:port on
// its PLAINTEXT listener, so after RestartBroker (container stop and start)
// the address in every client's bootstrap list and in the broker's
// metadata is still right; likewise REDIS_ADDR after RestartRedis. The
// broker's own inter-broker listener (BROKER, localhost:19092) and its
// controller (localhost:9093) stay inside the container.
type Containers struct {
	host      string // the Docker host as the test process reaches it
	kafka     *testcontainers.DockerContainer
	redis     *tcredis.RedisContainer
	kafkaAddr string
	redisAddr string
	broker    *brokertest.Broker // client-only handle
}

// StartContainers starts Kafka and Redis containers and creates
// DefaultTopics and o.Topics with o.Partitions partitions. It fails the
// test when there is no Docker engine.
func StartContainers(t testing.TB, o Options) *Containers {
	t.Helper()
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaStartTimeout)
	defer cancel()
	host, err := dockerHost(ctx)
	if err != nil {
		t.Fatalf("containers stack: %v", err)
	}
	c := &Containers{host: host}

	var errs []error
	for range bindAttempts {
		port := freePort(t)
		addr := net.JoinHostPort(advertisedHost(host), strconv.Itoa(port))
		req := KafkaRequest(host, port, o.Partitions)
		ctr, err := testcontainers.GenericContainer(ctx, req)
		if ctr != nil {
			testcontainers.CleanupContainer(t, ctr)
		}
		if err == nil {
			c.kafka, c.kafkaAddr = ctr.(*testcontainers.DockerContainer), addr
			break
		}
		errs = append(errs, err)
		if !portTaken(err) {
			break
		}
	}
	if c.kafka == nil {
		t.Fatalf("containers stack: start %s: %v", KafkaImage, errors.Join(errs...))
	}
	c.broker = &brokertest.Broker{Addr: c.kafkaAddr}

	errs = nil
	for range bindAttempts {
		port := freePort(t)
		ctr, err := tcredis.Run(ctx, RedisImage, RedisCustomizers(host, port)...)
		if ctr != nil {
			testcontainers.CleanupContainer(t, ctr)
		}
		if err == nil {
			c.redis, c.redisAddr = ctr, net.JoinHostPort(advertisedHost(host), strconv.Itoa(port))
			break
		}
		errs = append(errs, err)
		if !portTaken(err) {
			break
		}
	}
	if c.redis == nil {
		t.Fatalf("containers stack: start %s: %v", RedisImage, errors.Join(errs...))
	}

	topics := append(append([]string(nil), DefaultTopics...), o.Topics...)
	if err := createTopics(ctx, c.kafkaAddr, o.Partitions, topics); err != nil {
		t.Fatalf("containers stack: create topics on %s: %v", c.kafkaAddr, err)
	}
	return c
}

// KafkaRequest is the container request of the broker: host port
// hostPort (on the Docker host host) published as the PLAINTEXT listener
// and advertised as such; partitions is the default partition count of
// topics created on first use. Computed without a Docker engine.
func KafkaRequest(host string, hostPort, partitions int) testcontainers.GenericContainerRequest {
	req := testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{Image: KafkaImage},
		Started:          true,
	}
	advertised := net.JoinHostPort(advertisedHost(host), strconv.Itoa(hostPort))
	for _, opt := range []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(kafkaPort),
		testcontainers.WithEnv(KafkaEnv(advertised, partitions)),
		testcontainers.WithHostConfigModifier(bindPort(kafkaPort, host, hostPort)),
		testcontainers.WithWaitStrategyAndDeadline(kafkaStartTimeout,
			wait.ForListeningPort(kafkaPort),
			wait.ForLog("Kafka Server started"),
		),
	} {
		// The options above only set fields; they cannot fail.
		_ = opt.Customize(&req)
	}
	return req
}

// KafkaEnv is the broker's configuration (the apache/kafka image turns
// KAFKA_* variables into server.properties): one node that is broker and
// KRaft controller, the PLAINTEXT listener advertised as advertised, one
// replica of everything, topics created on first use with partitions
// partitions (as the devbroker does), no delay before a group's first
// rebalance, session timeouts down to 1s allowed (the devbroker's
// minimum; the services use 6s), and no time or size retention: like the
// devbroker, the broker keeps every record, since consent-sync refuses a
// consent topic the broker may delete changes from.
func KafkaEnv(advertised string, partitions int) map[string]string {
	return map[string]string{
		"CLUSTER_ID":                                     kafkaClusterID,
		"KAFKA_NODE_ID":                                  "1",
		"KAFKA_PROCESS_ROLES":                            "broker,controller",
		"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@localhost:9093",
		"KAFKA_LISTENERS":                                "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:19092,CONTROLLER://0.0.0.0:9093",
		"KAFKA_ADVERTISED_LISTENERS":                     "PLAINTEXT://" + advertised + ",BROKER://localhost:19092",
		"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":           "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"KAFKA_INTER_BROKER_LISTENER_NAME":               "BROKER",
		"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
		"KAFKA_LOG_DIRS":                                 "/tmp/kraft-combined-logs",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
		"KAFKA_DEFAULT_REPLICATION_FACTOR":               "1",
		"KAFKA_MIN_INSYNC_REPLICAS":                      "1",
		"KAFKA_NUM_PARTITIONS":                           strconv.Itoa(partitions),
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "true",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
		"KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS":             "1000",
		"KAFKA_LOG_RETENTION_MS":                         "-1",
		"KAFKA_LOG_RETENTION_BYTES":                      "-1",
	}
}

// RedisCustomizers are the options of the Redis module's container
// beyond its defaults: persistence off (no RDB snapshot, no append-only
// file), as redistest runs redis-server, so that a restarted Redis is
// empty; and the fixed host port hostPort.
func RedisCustomizers(host string, hostPort int) []testcontainers.ContainerCustomizer {
	return []testcontainers.ContainerCustomizer{
		testcontainers.WithCmd("redis-server", "--save", "", "--appendonly", "no"),
		testcontainers.WithHostConfigModifier(bindPort(redisPort, host, hostPort)),
	}
}

// bindPort publishes the container port on hostPort: on 127.0.0.1 when
// the Docker engine is local, else on every interface of the Docker host.
func bindPort(port, host string, hostPort int) func(*container.HostConfig) {
	return func(hc *container.HostConfig) {
		b := network.PortBinding{HostPort: strconv.Itoa(hostPort)}
		if isLoopback(host) {
			b.HostIP = netip.MustParseAddr("127.0.0.1")
		}
		if hc.PortBindings == nil {
			hc.PortBindings = network.PortMap{}
		}
		hc.PortBindings[network.MustParsePort(port)] = []network.PortBinding{b}
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// advertisedHost is the host part of the addresses given to clients.
func advertisedHost(host string) string {
	if isLoopback(host) {
		return "127.0.0.1"
	}
	return host
}

// dockerHost is the host at which the test process reaches published
// container ports (testcontainers' answer: localhost for a local engine,
// TESTCONTAINERS_HOST_OVERRIDE or the host of DOCKER_HOST otherwise).
func dockerHost(ctx context.Context) (host string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers: %v", r)
		}
	}()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return "", fmt.Errorf("no Docker engine: %w", err)
	}
	defer p.Close()
	return p.DaemonHost(ctx)
}

// portTaken reports whether a container failed to start because its host
// port was taken meanwhile (then another port is tried).
func portTaken(err error) bool {
	s := err.Error()
	return strings.Contains(s, "port is already allocated") || strings.Contains(s, "address already in use")
}

// freePort picks a port of this host that was free a moment ago; the
// start retries when Docker finds it taken.
func freePort(t testing.TB) int { return brokertest.FreePort(t) }

func (c *Containers) Name() string { return string(KindContainers) }

func (c *Containers) Describe() string {
	return fmt.Sprintf("Apache Kafka container (%s, KRaft) at %s, Redis container (%s) at %s",
		KafkaImage, c.kafkaAddr, RedisImage, c.redisAddr)
}

func (c *Containers) Brokers() []string          { return []string{c.kafkaAddr} }
func (c *Containers) Broker() *brokertest.Broker { return c.broker }

func (c *Containers) CreateTopics(t testing.TB, partitions int, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := createTopics(ctx, c.kafkaAddr, partitions, topics); err != nil {
		t.Fatalf("containers stack: create topics %v: %v", topics, err)
	}
}

// RestartBroker stops the Kafka container (SIGTERM, a controlled
// shutdown, killed after brokerStopTimeout) and starts it again: same
// container, same file system (the log is kept), same published port.
func (c *Containers) RestartBroker(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), brokerStopTimeout+readyTimeout)
	defer cancel()
	grace := brokerStopTimeout
	if err := c.kafka.Stop(ctx, &grace); err != nil {
		t.Fatalf("containers stack: stop the Kafka container: %v", err)
	}
	if err := c.kafka.Start(ctx); err != nil {
		t.Fatalf("containers stack: start the Kafka container again: %v", err)
	}
	if err := waitKafka(ctx, c.kafkaAddr); err != nil {
		t.Fatalf("containers stack: Kafka at %s after the restart: %v", c.kafkaAddr, err)
	}
}

func (c *Containers) RedisAddr() string { return c.redisAddr }

func (c *Containers) RedisClient(t testing.TB) *redis.Client {
	cl := redis.NewClient(&redis.Options{Addr: c.redisAddr})
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// StopRedis stops the Redis container at once (no grace period: a kill,
// as redistest's Stop).
func (c *Containers) StopRedis(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var now time.Duration
	if err := c.redis.Stop(ctx, &now); err != nil {
		t.Fatalf("containers stack: stop the Redis container: %v", err)
	}
}

// RestartRedis kills the Redis container if it runs and starts it again;
// with persistence off it comes back empty.
func (c *Containers) RestartRedis(t testing.TB) {
	t.Helper()
	c.StopRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := c.redis.Start(ctx); err != nil {
		t.Fatalf("containers stack: start the Redis container again: %v", err)
	}
	cl := redis.NewClient(&redis.Options{Addr: c.redisAddr, MaxRetries: -1, DialTimeout: time.Second})
	defer cl.Close()
	for {
		err := cl.Ping(ctx).Err()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("containers stack: Redis at %s does not answer PING after the restart: %v", c.redisAddr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Containers) LocalRedis() *redistest.Server { return nil }

// createTopics creates topics (replication factor 1) and waits until each
// partition has a leader.
func createTopics(ctx context.Context, addr string, partitions int, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 30 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	for _, tp := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: tp, NumPartitions: partitions, ReplicationFactor: 1})
	}
	res, err := client.CreateTopics(ctx, req)
	if err != nil {
		return err
	}
	var errs []error
	for tp, err := range res.Errors {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", tp, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return waitKafka(ctx, addr, topics...)
}

// waitKafka waits until the broker answers a metadata request and every
// partition of topics (all topics when none are named) has a leader.
func waitKafka(ctx context.Context, addr string, topics ...string) error {
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 5 * time.Second}
	var last error
	for {
		last = metadataReady(ctx, client, topics)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func metadataReady(ctx context.Context, client *kafka.Client, topics []string) error {
	mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	meta, err := client.Metadata(mctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return err
	}
	if len(meta.Brokers) == 0 {
		return errors.New("no broker in the metadata")
	}
	var bad []string
	for _, tp := range meta.Topics {
		if tp.Error != nil {
			bad = append(bad, tp.Name+": "+tp.Error.Error())
			continue
		}
		for _, p := range tp.Partitions {
			if p.Error != nil || p.Leader.ID < 0 || p.Leader.Host == "" {
				bad = append(bad, fmt.Sprintf("%s/%d: no leader", tp.Name, p.ID))
			}
		}
	}
	if len(topics) > 0 && len(meta.Topics) < len(topics) {
		bad = append(bad, fmt.Sprintf("%d of %d topics in the metadata", len(meta.Topics), len(topics)))
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}
