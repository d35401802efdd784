module github.com/consentgate/consentgate/e2e

go 1.26.8

require (
	github.com/consentgate/consentgate/pkg v0.0.0
	github.com/consentgate/consentgate/schemas v0.0.0
)

require (
	github.com/klauspost/compress v1.15.9 // indirect
	github.com/pierrec/lz4/v4 v4.1.15 // indirect
	github.com/segmentio/kafka-go v0.4.51 // indirect
)

replace (
	github.com/consentgate/consentgate/pkg => ../pkg
	github.com/consentgate/consentgate/schemas => ../schemas
)
