package stack

import (
	"encoding/base64"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"

	"github.com/consentgate/consentgate/pkg/proctest"
)

// listenerNames returns the names of a listeners value such as
// "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093", with their addresses.
func listenerNames(t *testing.T, v string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(v, ",") {
		name, addr, ok := strings.Cut(l, "://")
		if !ok {
			t.Fatalf("listener %q has no name://address form", l)
		}
		out[name] = addr
	}
	return out
}

// TestKafkaRequest checks the broker's container request, computed without
// a Docker engine: the pinned image, KRaft combined mode, listeners that
// fit together, the advertised address equal to the fixed host port, and
// the topic defaults of the devbroker.
func TestKafkaRequest(t *testing.T) {
	req := KafkaRequest("localhost", 41234, 4)
	if req.Image != "apache/kafka:3.9.1" || !req.Started {
		t.Errorf("image %q started %v, want apache/kafka:3.9.1 started", req.Image, req.Started)
	}
	if !slices.Equal(req.ExposedPorts, []string{"9092/tcp"}) {
		t.Errorf("exposed ports %v, want only 9092/tcp (the PLAINTEXT listener)", req.ExposedPorts)
	}
	env := req.Env
	for k, want := range map[string]string{
		"KAFKA_PROCESS_ROLES":                            "broker,controller",
		"KAFKA_NODE_ID":                                  "1",
		"KAFKA_CONTROLLER_QUORUM_VOTERS":                 "1@localhost:9093",
		"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
		"KAFKA_NUM_PARTITIONS":                           "4",
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "true",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
		"KAFKA_LOG_RETENTION_MS":                         "-1", // consent-sync refuses a consent topic with retention
		"KAFKA_LOG_RETENTION_BYTES":                      "-1",
	} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	// kafka-storage format takes a UUID in URL-safe base64 without padding.
	if id, err := base64.RawURLEncoding.DecodeString(env["CLUSTER_ID"]); err != nil || len(id) != 16 {
		t.Errorf("CLUSTER_ID %q is not a base64 UUID (%d bytes, %v): the KRaft storage cannot be formatted", env["CLUSTER_ID"], len(id), err)
	}
	for k := range env {
		if strings.Contains(k, "ZOOKEEPER") {
			t.Errorf("%s set: the broker runs in KRaft mode, without ZooKeeper", k)
		}
	}
	listeners := listenerNames(t, env["KAFKA_LISTENERS"])
	advertised := listenerNames(t, env["KAFKA_ADVERTISED_LISTENERS"])
	protocols := map[string]string{}
	for _, p := range strings.Split(env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], ",") {
		name, proto, _ := strings.Cut(p, ":")
		protocols[name] = proto
	}
	for name := range listeners {
		if protocols[name] == "" {
			t.Errorf("listener %s has no security protocol in %q", name, env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"])
		}
	}
	for name := range advertised {
		if _, ok := listeners[name]; !ok {
			t.Errorf("advertised listener %s is not a listener (%v)", name, listeners)
		}
	}
	if listeners["CONTROLLER"] != "0.0.0.0:9093" || advertised["CONTROLLER"] != "" {
		t.Errorf("controller listener %q (advertised %q), want 0.0.0.0:9093 and not advertised", listeners["CONTROLLER"], advertised["CONTROLLER"])
	}
	if listeners["PLAINTEXT"] != "0.0.0.0:9092" || advertised["PLAINTEXT"] != "127.0.0.1:41234" {
		t.Errorf("client listener %q advertised as %q, want 0.0.0.0:9092 advertised as the host port 127.0.0.1:41234", listeners["PLAINTEXT"], advertised["PLAINTEXT"])
	}
	if ib := env["KAFKA_INTER_BROKER_LISTENER_NAME"]; ib == "PLAINTEXT" || ib == "CONTROLLER" || listeners[ib] == "" {
		t.Errorf("inter-broker listener %q: want a listener of its own inside the container", ib)
	}
	if protocols["PLAINTEXT"] != "PLAINTEXT" {
		t.Errorf("client listener protocol %q, want PLAINTEXT", protocols["PLAINTEXT"])
	}

	hc := &container.HostConfig{}
	req.HostConfigModifier(hc)
	want := []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "41234"}}
	if got := hc.PortBindings[network.MustParsePort("9092/tcp")]; !slices.Equal(got, want) {
		t.Errorf("port bindings of 9092/tcp %+v, want %+v (a fixed host port, so that a restart keeps the advertised address)", got, want)
	}
	if req.WaitingFor == nil {
		t.Error("no wait strategy: the test would start before the broker is up")
	}

	// A remote Docker host: advertised by its name, published on every
	// interface there.
	req = KafkaRequest("docker.example", 41235, 3)
	if got := listenerNames(t, req.Env["KAFKA_ADVERTISED_LISTENERS"])["PLAINTEXT"]; got != "docker.example:41235" {
		t.Errorf("advertised %q on a remote Docker host, want docker.example:41235", got)
	}
	hc = &container.HostConfig{}
	req.HostConfigModifier(hc)
	if got := hc.PortBindings[network.MustParsePort("9092/tcp")]; len(got) != 1 || got[0].HostIP.IsValid() || got[0].HostPort != "41235" {
		t.Errorf("port bindings on a remote Docker host %+v, want port 41235 on every interface", got)
	}
}

// TestRedisRequest checks the options given to the Redis module: no
// persistence (a restarted Redis is empty, as redistest's) and the fixed
// host port.
func TestRedisRequest(t *testing.T) {
	req := testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{Image: RedisImage}}
	for _, opt := range RedisCustomizers("127.0.0.1", 41236) {
		if err := opt.Customize(&req); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(req.Cmd, []string{"redis-server", "--save", "", "--appendonly", "no"}) {
		t.Errorf("command %q, want redis-server with persistence off", req.Cmd)
	}
	hc := &container.HostConfig{}
	req.HostConfigModifier(hc)
	want := []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "41236"}}
	if got := hc.PortBindings[network.MustParsePort("6379/tcp")]; !slices.Equal(got, want) {
		t.Errorf("port bindings of 6379/tcp %+v, want %+v", got, want)
	}
}

// TestImagesPinnedAsCompose: the container stack runs the images
// docker-compose.yml runs, pinned to a release tag.
func TestImagesPinnedAsCompose(t *testing.T) {
	compose, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{KafkaImage, RedisImage} {
		name, tag, ok := strings.Cut(img, ":")
		if !ok || tag == "" || tag == "latest" || !strings.ContainsAny(tag, "0123456789") {
			t.Errorf("image %q is not pinned to a release tag", img)
		}
		if !strings.Contains(string(compose), "image: "+img+"\n") {
			t.Errorf("docker-compose.yml does not run %s (the stack and the compose file should pin the same %s)", img, name)
		}
	}
}

// TestDefaultTopicsAsDevbroker: the container stack creates the topics the
// devbroker creates at start.
func TestDefaultTopicsAsDevbroker(t *testing.T) {
	help := proctest.Start(t, "devbroker-help", proctest.Build(t, "services/devbroker"), nil, "--help")
	_ = help.Wait(t.Context())
	want := "Default topics: " + strings.Join(DefaultTopics, ", ") + "\n"
	if !strings.Contains(help.Output(), want) {
		t.Errorf("devbroker --help does not list %q:\n%s", want, help.Output())
	}
}

// TestPortTaken: a start that failed on a taken host port is retried on
// another port; any other failure is not.
func TestPortTaken(t *testing.T) {
	for msg, want := range map[string]bool{
		"Error response from daemon: driver failed programming external connectivity on endpoint x: Bind for 127.0.0.1:41234 failed: port is already allocated": true,
		"listen tcp4 127.0.0.1:41234: bind: address already in use":      true,
		"pull access denied for apache/kafka, repository does not exist": false,
		"container exited with code 1":                                   false,
	} {
		if got := portTaken(errors.New(msg)); got != want {
			t.Errorf("portTaken(%q) = %v, want %v", msg, got, want)
		}
	}
}
