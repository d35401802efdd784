package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pastEndLog is the start of the format string kafka-go's Reader logs, on
// its ErrorLogger, when it reads past a partition's end while connected;
// the consumer hooks it (readFrom) to notice a partition cut short.
const pastEndLog = "the kafka reader is reading passed the last offset"

// TestKafkaGoStillLogsPastTheEndAsTheConsumerExpects reads the source of
// the kafka-go module this build uses: an upgrade that rewords the message
// would silently disable the consumer's check of a partition cut short
// while it reads, so it fails here first.
func TestKafkaGoStillLogsPastTheEndAsTheConsumerExpects(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/segmentio/kafka-go").Output()
	if err != nil {
		t.Fatalf("go list the kafka-go module: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatal("go list gave no directory for the kafka-go module (not downloaded?)")
	}
	src, err := os.ReadFile(filepath.Join(dir, "reader.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), `"`+pastEndLog) {
		t.Fatalf("kafka-go's reader.go (%s) no longer logs %q: the consumer's check of a partition cut short while it reads (readFrom's ErrorLogger) must be brought up to date", dir, pastEndLog)
	}
	self, err := os.ReadFile("consume.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(self), `"`+pastEndLog+`"`) {
		t.Fatal("consume.go no longer hooks the message this test pins")
	}
}
