module github.com/consentgate/consentgate/services/consent-sync

go 1.26.8

require (
	github.com/consentgate/consentgate/pkg v0.0.0
	github.com/consentgate/consentgate/schemas v0.0.0
)

replace (
	github.com/consentgate/consentgate/pkg => ../../pkg
	github.com/consentgate/consentgate/schemas => ../../schemas
)
