// Package schemas embeds the project's Avro schemas (*.avsc) so that every
// service and test reads the same definitions. See README.md in this folder
// for the data_category annotation and the naming of versions.
package schemas

import "embed"

// FS holds every .avsc file of this folder.
//
//go:embed *.avsc
var FS embed.FS
