package redisconn

import (
	"log/slog"

	"github.com/consentgate/consentgate/pkg/internal/secretfile"
)

// LogAttrs lists the Redis settings for a start-up log: the addresses,
// whether a URL is set, whether TLS is on, the CA file, whether a client
// certificate is used, the server name and the user name; never the URL
// itself, a password, the password file (which may hold the password
// when an operator misplaced it), the client certificate's files, nor a CA
// file setting that looks like a file's content.
func (c Config) LogAttrs() []slog.Attr {
	attrs := []slog.Attr{
		slog.Any("redis_addr", c.Addrs),
		slog.Bool("redis_url_set", c.URL != ""),
		slog.Bool("redis_tls", c.TLSOn()),
	}
	switch {
	case secretfile.LooksLikeContent(c.TLSCAFile):
		// A Secret mapped as a value: the content, never logged.
		attrs = append(attrs, slog.String("redis_tls_ca_file", "(not a path: not shown)"))
	case c.TLSCAFile != "":
		attrs = append(attrs, slog.String("redis_tls_ca_file", c.TLSCAFile))
	}
	if c.TLSCertFile != "" {
		attrs = append(attrs, slog.Bool("redis_tls_client_cert", true))
	}
	if c.TLSServerName != "" {
		attrs = append(attrs, slog.String("redis_tls_server_name", c.TLSServerName))
	}
	if c.Username != "" {
		attrs = append(attrs, slog.String("redis_username", c.Username))
	}
	attrs = append(attrs, slog.Bool("redis_password_set", c.Password != "" || c.PasswordFile != ""))
	return attrs
}
