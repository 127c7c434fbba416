package match

import (
	"fmt"
	"regexp"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
)

// Regular expressions ({a: /^x/i}, {a: {$regex: "^x", $options: "i"}}, in $in and
// $not) run on Go's regexp, as in FerretDB: the PCRE forms it lacks (look-around,
// back-references) and the x option are reported as unsupported rather than misread.

// regexFlags maps MongoDB's regex options to Go's inline flags ("u" is Go's default).
var regexFlags = map[rune]string{'i': "i", 'm': "m", 's': "s", 'u': ""}

// regexPred matches strings (and symbols) the expression finds something in, and a
// stored regular expression equal to it.
func regexPred(path, pattern, options string) (pred, error) {
	flags := ""
	for _, o := range options {
		f, ok := regexFlags[o]
		if !ok {
			return nil, unsupported("regular expression option %q on %q (the sandbox has i, m, s)", o, path)
		}
		flags += f
	}
	expr := pattern
	if flags != "" {
		expr = "(?" + flags + ")" + pattern
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, unsupported("regular expression /%s/ on %q (Go's regexp: %v)", pattern, path, err)
	}
	return func(r resolved) bool {
		return candidates(r, func(v bson.RawValue) bool {
			switch v.Type {
			case bsontype.String:
				return re.MatchString(v.StringValue())
			case bsontype.Symbol:
				return re.MatchString(v.Symbol())
			case bsontype.Regex:
				p, o := v.Regex()
				return p == pattern && o == options
			}
			return false
		})
	}, nil
}

// compileRegexOp reads {$regex: "..." or /.../, $options: "..."}.
func compileRegexOp(path string, arg, options bson.RawValue) (pred, error) {
	var pattern, opts string
	switch arg.Type {
	case bsontype.String:
		pattern = arg.StringValue()
	case bsontype.Regex:
		pattern, opts = arg.Regex()
	default:
		return nil, fmt.Errorf("$regex on %q has to be a string", path)
	}
	if options.Type != 0 {
		o, ok := options.StringValueOK()
		if !ok {
			return nil, fmt.Errorf("$options on %q has to be a string", path)
		}
		if opts != "" && o != "" {
			return nil, fmt.Errorf("options set in both $regex and $options on %q", path)
		}
		opts += o
	}
	return regexPred(path, pattern, opts)
}
