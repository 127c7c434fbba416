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
// _id shown unless excluded, and (for $project) top-level fields, _id included,
// computed from an expression (expr.go).
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
	name string
	expr bson.RawValue
}

// parseProjection reads a projection document; allowComputed enables the $project
// forms. An empty or absent spec returns nil (everything).
func parseProjection(spec bson.Raw, allowComputed bool) (*projection, error) {
	elems, err := spec.Elements()
	if err != nil || len(elems) == 0 {
		return nil, err
	}
	p := &projection{root: &projNode{children: map[string]*projNode{}}}
	idExcluded, idComputed, modeSet := false, false, false
	for _, e := range elems {
		key, v := e.Key(), e.Value()
		if allowComputed && isExpression(v) {
			if strings.Contains(key, ".") {
				return nil, unsupportedProjection(key)
			}
			if err := checkExpr(v); err != nil {
				return nil, err
			}
			if key == "_id" {
				idComputed = true
			} else {
				if modeSet && !p.inclusive {
					return nil, wire.BadValue("Cannot use a computed field in an exclusion projection")
				}
				p.inclusive, modeSet = true, true
			}
			p.computed = append(p.computed, computedField{name: key, expr: v})
			continue
		}
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
		default:
			return nil, unsupportedProjection(key)
		}
	}
	if !modeSet {
		// Only _id was named: {_id: 0} excludes it, {_id: 1} keeps only it.
		p.inclusive = !idExcluded
	}
	switch {
	case idComputed && !p.inclusive:
		return nil, wire.BadValue("Cannot use a computed _id in an exclusion projection")
	case idComputed:
		delete(p.root.children, "_id")
	case idExcluded:
		if p.inclusive {
			delete(p.root.children, "_id")
		} else {
			p.root.children["_id"] = &projNode{leaf: true}
		}
	case p.inclusive:
		p.root.children["_id"] = &projNode{leaf: true}
	}
	return p, nil
}

// isExpression tells a computed field ("$path", {$op: ...}) from an inclusion, an
// exclusion or a nested projection.
func isExpression(v bson.RawValue) bool {
	switch v.Type {
	case bsontype.String:
		return strings.HasPrefix(v.StringValue(), "$")
	case bsontype.EmbeddedDocument:
		elems, _ := v.Document().Elements()
		_, ok := operatorOf(elems)
		return ok
	}
	return false
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
	// A computed _id comes first, where the document's own would be.
	for _, c := range p.computed {
		if c.name == "_id" {
			out = appendComputed(out, doc, c)
		}
	}
	out = p.root.appendDoc(out, doc, p.inclusive)
	for _, c := range p.computed {
		if c.name != "_id" {
			out = appendComputed(out, doc, c)
		}
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// appendComputed appends a computed field, unless it names a missing field.
func appendComputed(out []byte, doc bson.Raw, c computedField) []byte {
	if v, ok := evalExpr(doc, c.expr); ok {
		out = bsoncore.AppendValueElement(out, c.name, core(v))
	}
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
