module github.com/consentgate/consentgate/services/devstack

go 1.26.8

require (
	github.com/consentgate/consentgate/pkg v0.0.0
	github.com/consentgate/consentgate/schemas v0.0.0
)

require (
	github.com/alicebob/miniredis/v2 v2.40.0 // indirect
	github.com/yuin/gopher-lua v1.1.1 // indirect
)

replace (
	github.com/consentgate/consentgate/pkg => ../../pkg
	github.com/consentgate/consentgate/schemas => ../../schemas
)
