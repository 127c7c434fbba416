package router

import (
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// projection applies a find projection (or a $project stage) in the router, where
// results from several shards are merged: inclusion or exclusion of dotted paths,
// _id shown unless excluded, and (for $project) top-level fields computed from a
// "$path" or a {$literal: v}.
type projection struct {
	inclusive bool
	root      *projNode
	computed  []computedField
}

type projNode struct {
	leaf     bool
	children map[string]*projNode
}

type computedField struct {
	name    string
	path    string        // "$a.b" without the "$"
	literal bson.RawValue // when path is ""
}

// parseProjection reads a projection document; allowComputed enables the $project
// forms. An empty or absent spec returns nil (everything).
func parseProjection(spec bson.Raw, allowComputed bool) (*projection, error) {
	elems, err := spec.Elements()
	if err != nil || len(elems) == 0 {
		return nil, err
	}
	p := &projection{root: &projNode{children: map[string]*projNode{}}}
	idExcluded, modeSet := false, false
	for _, e := range elems {
		key, v := e.Key(), e.Value()
		switch v.Type {
		case bsontype.Boolean, bsontype.Int32, bsontype.Int64, bsontype.Double:
			include := truthy(v)
			if key == "_id" {
				idExcluded = !include
				continue
			}
			if modeSet && include != p.inclusive {
				return nil, wire.BadValue(fmt.Sprintf("Cannot do %s on field %s in %s projection",
					map[bool]string{true: "inclusion", false: "exclusion"}[include], key,
					map[bool]string{true: "inclusion", false: "exclusion"}[p.inclusive]))
			}
			p.inclusive, modeSet = include, true
			p.root.add(strings.Split(key, "."))
		case bsontype.String:
			s := v.StringValue()
			if !allowComputed || !strings.HasPrefix(s, "$") || strings.Contains(key, ".") {
				return nil, unsupportedProjection(key)
			}
			if modeSet && !p.inclusive {
				return nil, wire.BadValue("Cannot use a computed field in an exclusion projection")
			}
			p.inclusive, modeSet = true, true
			p.computed = append(p.computed, computedField{name: key, path: s[1:]})
		case bsontype.EmbeddedDocument:
			lit, err := v.Document().LookupErr("$literal")
			if !allowComputed || err != nil || strings.Contains(key, ".") {
				return nil, unsupportedProjection(key)
			}
			p.inclusive, modeSet = true, true
			p.computed = append(p.computed, computedField{name: key, literal: lit})
		default:
			return nil, unsupportedProjection(key)
		}
	}
	if !modeSet {
		// Only _id was named: {_id: 0} excludes it, {_id: 1} keeps only it.
		p.inclusive = !idExcluded
	}
	if idExcluded {
		if p.inclusive {
			delete(p.root.children, "_id")
		} else {
			p.root.children["_id"] = &projNode{leaf: true}
		}
	} else if p.inclusive {
		p.root.children["_id"] = &projNode{leaf: true}
	}
	return p, nil
}

func unsupportedProjection(key string) error {
	return &wire.Error{Code: 2, Name: "BadValue", Msg: fmt.Sprintf(
		"the sandbox router supports only inclusion, exclusion and \"$field\" projections; %q is not one", key)}
}

func (n *projNode) add(parts []string) {
	if n.leaf {
		return
	}
	if len(parts) == 0 {
		n.leaf, n.children = true, nil
		return
	}
	c := n.children[parts[0]]
	if c == nil {
		c = &projNode{children: map[string]*projNode{}}
		n.children[parts[0]] = c
	}
	c.add(parts[1:])
}

// apply returns the projected document.
func (p *projection) apply(doc bson.Raw) bson.Raw {
	if p == nil {
		return doc
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = p.root.appendDoc(out, doc, p.inclusive)
	for _, c := range p.computed {
		v := c.literal
		if c.path != "" {
			var ok bool
			v, ok = lookupPath(doc, c.path)
			if !ok {
				continue
			}
		}
		out = bsoncore.AppendValueElement(out, c.name, core(v))
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// appendDoc appends the projected elements of doc.
func (n *projNode) appendDoc(out []byte, doc bson.Raw, inclusive bool) []byte {
	elems, _ := doc.Elements()
	for _, e := range elems {
		key, v := e.Key(), e.Value()
		child := n.children[key]
		switch {
		case child == nil:
			if !inclusive {
				out = bsoncore.AppendValueElement(out, key, core(v))
			}
		case child.leaf:
			if inclusive {
				out = bsoncore.AppendValueElement(out, key, core(v))
			}
		case v.Type == bsontype.EmbeddedDocument:
			sub := child.project(v.Document(), inclusive)
			out = bsoncore.AppendDocumentElement(out, key, sub)
		case v.Type == bsontype.Array:
			out = bsoncore.AppendArrayElement(out, key, child.projectArray(v.Array(), inclusive))
		default:
			if !inclusive {
				out = bsoncore.AppendValueElement(out, key, core(v))
			}
		}
	}
	return out
}

func (n *projNode) project(doc bson.Raw, inclusive bool) []byte {
	idx, out := bsoncore.AppendDocumentStart(nil)
	out = n.appendDoc(out, doc, inclusive)
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// projectArray applies a nested projection to each element of an array: documents
// are projected, other values kept only by an exclusion.
func (n *projNode) projectArray(arr bson.Raw, inclusive bool) []byte {
	idx, out := bsoncore.AppendArrayStart(nil)
	vals, _ := arr.Values()
	i := 0
	for _, v := range vals {
		key := fmt.Sprint(i)
		switch v.Type {
		case bsontype.EmbeddedDocument:
			out = bsoncore.AppendDocumentElement(out, key, n.project(v.Document(), inclusive))
		case bsontype.Array:
			out = bsoncore.AppendArrayElement(out, key, n.projectArray(v.Array(), inclusive))
		default:
			if inclusive {
				continue
			}
			out = bsoncore.AppendValueElement(out, key, core(v))
		}
		i++
	}
	out, _ = bsoncore.AppendArrayEnd(out, idx)
	return out
}
