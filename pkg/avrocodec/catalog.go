package avrocodec

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Catalog is the set of local schemas, loaded once at start-up from the
// schemas/ folder (schemas.FS). It is immutable and safe for concurrent use.
//
// The catalog indexes every schema by its CRC-64-AVRO fingerprint (the writer
// lookup of the single-object encoding; the specification's fingerprint, and
// goavro's older one as an alias, see Schema.LegacyFingerprint) and by full
// name. When several files
// define the same full name, the one with the highest version is the reader
// schema: every event is decoded into the latest shape its service knows.
type Catalog struct {
	byFingerprint map[uint64]*Schema
	byLegacy      map[uint64]*Schema   // Schema.LegacyFingerprint, read only
	byName        map[string][]*Schema // ascending by version
	byAlias       map[string]string    // record alias -> full name
	all           []*Schema
}

var versionSuffix = regexp.MustCompile(`^(.+)\.v([0-9]+)$`)

// LoadCatalog reads every *.avsc file at the root of fsys (flat, no
// sub-folders), builds a goavro codec for each, and extracts the
// data_category annotations. The version of a schema comes from its file
// name: page_view.v2.avsc is version 2; a file without a .vN suffix is
// version 1. Two files with the same full name and version are an error, and
// so is a top-level type other than a record. Errors name the file.
func LoadCatalog(fsys fs.FS) (*Catalog, error) {
	files, err := fs.Glob(fsys, "*.avsc")
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("list schemas: no .avsc file found")
	}
	c := &Catalog{
		byFingerprint: map[uint64]*Schema{},
		byLegacy:      map[uint64]*Schema{},
		byName:        map[string][]*Schema{},
		byAlias:       map[string]string{},
	}
	for _, file := range files {
		s, err := loadFile(fsys, file)
		if err != nil {
			return nil, err
		}
		for _, other := range c.byName[s.FullName] {
			if other.Version == s.Version {
				return nil, fmt.Errorf("schema file %s: %s version %d is also defined by %s", file, s.FullName, s.Version, other.File)
			}
		}
		c.byName[s.FullName] = append(c.byName[s.FullName], s)
		c.all = append(c.all, s)
	}
	for name, list := range c.byName {
		sort.Slice(list, func(i, j int) bool { return list[i].Version < list[j].Version })
		// Fingerprints ignore docs, annotations and logical types, so two
		// versions may share one: the later version wins, as it does for
		// readers.
		for _, s := range list {
			c.byFingerprint[s.Fingerprint] = s
			if s.LegacyFingerprint != s.Fingerprint {
				c.byLegacy[s.LegacyFingerprint] = s
			}
		}
		for _, a := range list[len(list)-1].root.Aliases {
			if _, taken := c.byName[a]; !taken {
				c.byAlias[a] = name
			}
		}
	}
	sort.Slice(c.all, func(i, j int) bool {
		if c.all[i].FullName != c.all[j].FullName {
			return c.all[i].FullName < c.all[j].FullName
		}
		return c.all[i].Version < c.all[j].Version
	})
	return c, nil
}

func loadFile(fsys fs.FS, file string) (*Schema, error) {
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, fmt.Errorf("schema file %s: %w", file, err)
	}
	s, err := buildSchema(string(data))
	if err != nil {
		return nil, fmt.Errorf("schema file %s: %w", file, err)
	}
	s.File = file
	s.Version = 1
	base := strings.TrimSuffix(path.Base(file), ".avsc")
	if m := versionSuffix.FindStringSubmatch(base); m != nil {
		v, err := strconv.Atoi(m[2])
		if err != nil || v < 1 {
			return nil, fmt.Errorf("schema file %s: version suffix must be .v1 or higher", file)
		}
		s.Version = v
	}
	return s, nil
}

// SchemaByName returns the reader schema for a full name: the highest version
// in the catalog. A record alias declared by the latest version also finds it.
func (c *Catalog) SchemaByName(fullName string) (*Schema, bool) {
	list, ok := c.byName[fullName]
	if !ok {
		name, aliased := c.byAlias[fullName]
		if !aliased {
			return nil, false
		}
		list = c.byName[name]
	}
	return list[len(list)-1], true
}

// SchemaByFingerprint returns the catalog schema whose Parsing Canonical Form
// has the given CRC-64-AVRO fingerprint (Schema.Fingerprint). A schema's
// LegacyFingerprint, the goavro fingerprint of records written before
// consentgate followed the specification, finds it too; a standard
// fingerprint always wins over a legacy one.
func (c *Catalog) SchemaByFingerprint(fp uint64) (*Schema, bool) {
	if s, ok := c.byFingerprint[fp]; ok {
		return s, true
	}
	s, ok := c.byLegacy[fp]
	return s, ok
}

// Versions returns every version of a full name, oldest first.
func (c *Catalog) Versions(fullName string) []*Schema {
	return append([]*Schema(nil), c.byName[fullName]...)
}

// Schemas returns every schema of the catalog, ordered by full name and
// version.
func (c *Catalog) Schemas() []*Schema {
	return append([]*Schema(nil), c.all...)
}

// Version returns one version of a full name, e.g. to produce events with an
// older schema in tests and demos.
func (c *Catalog) Version(fullName string, version int) (*Schema, bool) {
	for _, s := range c.byName[fullName] {
		if s.Version == version {
			return s, true
		}
	}
	return nil, false
}
