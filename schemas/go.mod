module github.com/consentgate/consentgate/schemas

go 1.26.8
