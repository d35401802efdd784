module github.com/consentgate/consentgate/schemas

go 1.26.8

require github.com/linkedin/goavro/v2 v2.15.0

require github.com/golang/snappy v0.0.1 // indirect
