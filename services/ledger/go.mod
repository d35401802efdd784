module github.com/consentgate/consentgate/services/ledger

go 1.26.8

require (
	github.com/consentgate/consentgate/pkg v0.0.0
	github.com/consentgate/consentgate/schemas v0.0.0
	github.com/segmentio/kafka-go v0.4.51
)

replace (
	github.com/consentgate/consentgate/pkg => ../../pkg
	github.com/consentgate/consentgate/schemas => ../../schemas
)
