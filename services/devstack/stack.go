package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/consentgate/consentgate/pkg/kafkaconn"
	"github.com/consentgate/consentgate/pkg/stream"
)

// stack owns the processes devstack started and stops them in reverse
// pipeline order.
type stack struct {
	log    *slog.Logger
	binDir string
	logDir string

	mu       sync.Mutex
	services []*child // consent-sync, enforcer
	broker   *child
	redis    *child
	mini     *miniredis.Miniredis
	errs     []error
}

type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	logf *os.File
}

func (s *stack) start(name, bin string, env []string, args ...string) (*child, error) {
	logPath := filepath.Join(s.logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", logPath, err)
	}
	c := &child{name: name, done: make(chan struct{}), logf: f}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stderr = f
	// Own process group: Ctrl-C reaches devstack only, which then stops
	// the children in order.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return c, nil
}

func (c *child) wait() {
	go func() {
		c.err = c.cmd.Wait()
		c.logf.Close()
		close(c.done)
	}()
}

func (c *child) stop(timeout time.Duration) error {
	select {
	case <-c.done:
		return c.exitErr()
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.exitErr()
	case <-time.After(timeout):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
		return fmt.Errorf("%s did not stop within %s and was killed", c.name, timeout)
	}
}

func (c *child) exitErr() error {
	if c.err != nil {
		return fmt.Errorf("%s exited: %v (see its log)", c.name, c.err)
	}
	return nil
}

// startRedis returns the address of the Redis to use.
func (s *stack) startRedis(addr string) (string, error) {
	if addr != "" {
		fmt.Printf("redis: using REDIS_ADDR=%s\n", addr)
		return addr, nil
	}
	if bin, err := exec.LookPath("redis-server"); err == nil {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		c, err := s.start("redis", bin, nil, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--save", "", "--appendonly", "no")
		if err != nil {
			return "", err
		}
		c.cmd.Stdout = c.logf
		if err := c.cmd.Start(); err != nil {
			return "", fmt.Errorf("start redis-server: %w", err)
		}
		c.wait()
		s.redis = c
		addr = fmt.Sprintf("127.0.0.1:%d", port)
		if err := waitTCP(addr, 10*time.Second); err != nil {
			return "", fmt.Errorf("redis-server did not come up: %w", err)
		}
		fmt.Printf("redis: started redis-server at %s (nothing kept on disk)\n", addr)
		return addr, nil
	}
	m, err := miniredis.Run()
	if err != nil {
		return "", fmt.Errorf("start embedded redis: %w", err)
	}
	s.mini = m
	fmt.Printf("redis: NOTICE no REDIS_ADDR and no redis-server installed: using an embedded in-process Redis (miniredis) at %s.\n"+
		"       It is for trying things out only; install redis-server (apt-get install redis-server) or set REDIS_ADDR for anything else.\n", m.Addr())
	return m.Addr(), nil
}

func (s *stack) startBroker(cfg Config, topics []string) (string, error) {
	port := cfg.KafkaPort
	if port != 0 && !portFree(port) {
		p, err := freePort()
		if err != nil {
			return "", err
		}
		fmt.Printf("broker: port %d is taken, using %d instead (set DEVBROKER_PORT to choose)\n", port, p)
		port = p
	}
	c, err := s.start("devbroker", filepath.Join(s.binDir, "devbroker"), nil,
		"--port", fmt.Sprint(port), "--partitions", fmt.Sprint(cfg.Partitions),
		"--data-dir", filepath.Join(cfg.DataDir, "kafka"), "--topics", strings.Join(topics, ","))
	if err != nil {
		return "", err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := c.cmd.Start(); err != nil {
		return "", fmt.Errorf("start devbroker: %w", err)
	}
	c.wait()
	s.broker = c
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "devbroker ready "); ok {
				ready <- addr
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case addr := <-ready:
		fmt.Printf("broker: embedded Kafka-protocol broker (kfake) at %s, data in %s\n", addr, filepath.Join(cfg.DataDir, "kafka"))
		return addr, nil
	case <-c.done:
		return "", fmt.Errorf("devbroker exited at start: %v; see %s", c.err, filepath.Join(s.logDir, "devbroker.log"))
	case <-time.After(60 * time.Second):
		return "", errors.New("devbroker did not start within 60s")
	}
}

func (s *stack) startService(name string, env []string) error {
	c, err := s.start(name, filepath.Join(s.binDir, name), env)
	if err != nil {
		return err
	}
	c.cmd.Stdout = c.logf
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	c.wait()
	s.mu.Lock()
	s.services = append(s.services, c)
	s.mu.Unlock()
	// A bad setting stops a service at once: report it instead of running on.
	select {
	case <-c.done:
		return fmt.Errorf("%s exited at start: %v; see %s", name, c.err, filepath.Join(s.logDir, name+".log"))
	case <-time.After(500 * time.Millisecond):
	}
	return nil
}

// stopServices sends SIGTERM to the services (they drain and commit) and
// waits for them.
func (s *stack) stopServices(timeout time.Duration) {
	s.mu.Lock()
	svcs := s.services
	s.services = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(svcs))
	for i, c := range svcs {
		wg.Go(func() { errs[i] = c.stop(timeout) })
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, err := range errs {
		if err != nil {
			s.errs = append(s.errs, err)
		}
	}
}

func (s *stack) stopAll() {
	s.stopServices(30 * time.Second)
	if s.broker != nil {
		if err := s.broker.stop(60 * time.Second); err != nil {
			s.errs = append(s.errs, err)
		}
		s.broker = nil
	}
	if s.redis != nil {
		_ = s.redis.stop(10 * time.Second)
		s.redis = nil
	}
	if s.mini != nil {
		s.mini.Close()
		s.mini = nil
	}
}

func (s *stack) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// brokerConfig is how the dev stack's own clients (the demo producer and
// the summary) reach its broker: plain TCP, as the devbroker it starts
// listens.
func brokerConfig(addr string) stream.Config {
	kc := stream.DefaultConfig()
	kc.Brokers = []string{addr}
	return kc
}

// securityEnv sets every KAFKA_TLS* and KAFKA_SASL_* variable of the
// services to sec's values, so that none set in the shell that started
// the dev stack (inherited by the services) points them at another
// security than its broker's. An empty value is unset for the services.
func securityEnv(sec kafkaconn.Config) []string {
	return []string{
		"KAFKA_TLS=" + strconv.FormatBool(sec.TLSOn()),
		"KAFKA_TLS_CA_FILE=" + sec.CAFile,
		"KAFKA_TLS_CERT_FILE=" + sec.CertFile,
		"KAFKA_TLS_KEY_FILE=" + sec.KeyFile,
		"KAFKA_TLS_SERVER_NAME=" + sec.ServerName,
		"KAFKA_SASL_MECHANISM=" + sec.SASLMechanism,
		"KAFKA_SASL_USERNAME=" + sec.SASLUsername,
		"KAFKA_SASL_PASSWORD_FILE=" + sec.SASLPasswordFile,
	}
}
