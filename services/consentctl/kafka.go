package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/consentgate/consentgate/pkg/kafkaconn"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/pkg/topicread"
)

// kafkaFlags are the connection settings of the commands that read the
// brokers: the same variables as the services' (KAFKA_TLS*,
// KAFKA_SASL_*), each with its flag.
type kafkaFlags struct {
	security kafkaconn.Config
	envErr   error // a variable that could not be read
	stderr   io.Writer
}

func (k *kafkaFlags) add(fs *flag.FlagSet, e *env) {
	k.envErr = k.security.StdFlags(fs, e.getenv)
	k.stderr = e.stderr
}

// client returns a topicread.Client of brokers (comma-separated) that
// connects as the settings say, after checking them; PLAIN without TLS is
// warned about on standard error.
func (k *kafkaFlags) client(brokers string) (*topicread.Client, error) {
	if err := errors.Join(k.envErr, k.security.Validate()); err != nil {
		return nil, fmt.Errorf("Kafka connection settings (see --help):\n%w", err)
	}
	for _, w := range k.security.Warnings() {
		fmt.Fprintln(k.stderr, "warning:", w)
	}
	kc := stream.DefaultConfig()
	kc.Brokers = strings.Split(brokers, ",")
	kc.ClientID = "consentctl"
	kc.Security = k.security
	return kc.TopicReader(0), nil
}
