module github.com/consentgate/consentgate/e2e

go 1.26.8

require (
	github.com/consentgate/consentgate/pkg v0.0.0
	github.com/consentgate/consentgate/schemas v0.0.0
	github.com/redis/go-redis/v9 v9.23.0
	github.com/segmentio/kafka-go v0.4.51
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/golang/snappy v0.0.1 // indirect
	github.com/klauspost/compress v1.15.9 // indirect
	github.com/linkedin/goavro/v2 v2.15.0 // indirect
	github.com/pierrec/lz4/v4 v4.1.15 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace (
	github.com/consentgate/consentgate/pkg => ../pkg
	github.com/consentgate/consentgate/schemas => ../schemas
)
