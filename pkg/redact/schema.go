package redact

import (
	"sync"

	"github.com/consentgate/consentgate/pkg/avrocodec"
)

// node is a type of the schema model (avrocodec.Schema.Root) at a field
// path: the model, a graph, unrolled along paths, so that every field knows
// its path without building strings per event. Children are built on first
// use (recursive types unroll only as deep as the data goes) and are then
// shared by every call.
type node struct {
	t    *avrocodec.Type
	path string // field path of the value this node describes ("" for the root record)

	once     sync.Once
	fields   []*fieldNode // record
	items    *node        // array: path + "[]"
	values   *node        // map: path + "{}"
	branches []*node      // union: same path
}

// fieldNode is one record field at its path.
type fieldNode struct {
	def  *avrocodec.RecordField
	path string
	node *node
}

func (n *node) children() *node {
	n.once.Do(func() {
		switch n.t.Kind {
		case avrocodec.KindRecord:
			n.fields = make([]*fieldNode, len(n.t.Fields))
			for i, f := range n.t.Fields {
				p := f.Name
				if n.path != "" {
					p = n.path + "." + f.Name
				}
				n.fields[i] = &fieldNode{def: f, path: p, node: &node{t: f.Type, path: p}}
			}
		case avrocodec.KindArray:
			n.items = &node{t: n.t.Items, path: n.path + "[]"}
		case avrocodec.KindMap:
			n.values = &node{t: n.t.Values, path: n.path + "{}"}
		case avrocodec.KindUnion:
			n.branches = make([]*node, len(n.t.Branches))
			for i, b := range n.t.Branches {
				n.branches[i] = &node{t: b, path: n.path}
			}
		}
	})
	return n
}
