package sjson

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// ferretTexts are rows FerretDB v1.24.2 stored for the corpus of
// sandbox/shard/sjson_test.go (where TestSJSONDecodeMatchesFerretDB checks Decode
// against FerretDB itself), one per line.
func ferretTexts(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open("testdata/ferretdb.sjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var texts [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		texts = append(texts, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return texts
}

// checkDecode decodes text and, if that succeeds, checks that the result is valid BSON
// and refDecode's bytes.
func checkDecode(t testing.TB, text []byte) ([]byte, error) {
	t.Helper()
	got, err := Decode(nil, text)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Decode(%q): error %v is not an *Error", text, err)
		}
		return nil, err
	}
	if err := bsoncore.Document(got).Validate(); err != nil {
		t.Errorf("Decode(%q) = %x: invalid BSON: %v", text, got, err)
	}
	want, err := refDecode(text)
	if err != nil {
		t.Errorf("Decode(%q) = %s, but encoding/json's reading fails: %v", text, bson.Raw(got), err)
	} else if !bytes.Equal(got, want) {
		t.Errorf("Decode(%q)\n = %s\n   %x\nencoding/json's reading\n   %s\n   %x", text, bson.Raw(got), got, bson.Raw(want), want)
	}
	return got, nil
}

func TestDecodeFerretDBTexts(t *testing.T) {
	texts := ferretTexts(t)
	if len(texts) < 20 {
		t.Fatalf("%d texts", len(texts))
	}
	for _, text := range texts {
		if _, err := checkDecode(t, text); err != nil {
			t.Errorf("Decode(%s): %v", text, err)
		}
	}
}

// one is the text of the document {_id: 1, v: <value>} with v's schema element elem.
func one(elem, value string) string {
	return `{"$s":{"p":{"_id":{"t":"int"},"v":` + elem + `},"$k":["_id","v"]},"_id":1,"v":` + value + `}`
}

func TestDecodeMalformed(t *testing.T) {
	bad := []string{
		``, ` `, `null`, `[]`, `"x"`, `{`, `}`, `{"$s":{}`, `{"$s":{}}}`, `{"$s":{}},`,
		`{"_id":1}`,                     // no schema
		`{"$s":{},"$s":{}}`,             // two schemas
		`{"$s":{"p":{},"$k":[]},"x":1}`, // a member the schema lacks
		`{"$s":[]}`,                     // schema not an object
		`{"$s":{"p":{"_id":{"t":"int"}}},"_id":1}`,                                              // no $k
		`{"$s":{"$k":["_id"]},"_id":1}`,                                                         // no p
		`{"$s":{"p":{},"$k":[],"x":1}}`,                                                         // unknown schema member
		`{"$s":{"p":{},"p":{},"$k":[]}}`,                                                        // duplicate p
		`{"$s":{"p":[],"$k":[]}}`,                                                               // p not an object
		`{"$s":{"p":{},"$k":{}}}`,                                                               // $k not an array
		`{"$s":{"p":{"a":{"t":"int"}},"$k":[1]},"a":1}`,                                         // $k item not a string
		`{"$s":{"p":{"_id":{"t":"int"}},"$k":["x"]},"_id":1}`,                                   // $k names what p lacks
		`{"$s":{"p":{"_id":{"t":"int"},"a":{"t":"int"}},"$k":["_id"]},"_id":1}`,                 // p has more than $k
		`{"$s":{"p":{"_id":{"t":"int"},"a":{"t":"int"}},"$k":["_id","_id"]},"_id":1}`,           // $k names a field twice
		`{"$s":{"p":{"_id":{"t":"int"},"_id":{"t":"int"}},"$k":["_id","_id"]},"_id":1,"_id":1}`, // ... and p and the data too
		`{"$s":{"p":{"_id":{"t":"int"},"a":{"t":"int"}},"$k":["_id","a"]},"_id":1}`,             // a field without a value
		`{"$s":{"p":{"_id":{"t":"int"}},"$k":["_id"]},"_id":1,"_id":1}`,                         // a value twice
		`{"$s":{"p":{"_id":{"t":"int"}},"$k":["_id"]},"_id":1} `,                                // text after the document (FerretDB refuses it too)
		`{"$s":{"p":{"_id":{"t":"int"}},"$k":["_id"]},"_id":1}x`,
		`{"$s":{"p":{"_id":{"t":"int"}},"$k":["_id"]},"_id":1,}`,
		`{"$s":{"p":{"_id":{"t":"int"}},"$k":["_id"]},"_id" 1}`,
		`{"$s":{"p":{"_id":{"t":"int"}},"$k":["_id"]},"_id":1 "x":2}`,
		`{"$s":{"p":{"\u0000":{"t":"int"}},"$k":["\u0000"]},"\u0000":1}`, // NUL in a name
		// Schema elements.
		one(`{"t":"decimal"}`, `1`), one(`{"t":"minKey"}`, `1`), one(`{"t":"Int"}`, `1`), one(`{}`, `1`), one(`{"t":1}`, `1`),
		one(`{"t":"int","x":1}`, `1`), one(`{"t":"int","o":"i"}`, `1`), one(`{"t":"int","t":"int"}`, `1`), one(`[]`, `1`),
		one(`{"t":"object"}`, `{}`), one(`{"t":"object","$s":[]}`, `{}`), one(`{"t":"array"}`, `[]`), one(`{"t":"array","i":{}}`, `[]`),
		one(`{"t":"binData"}`, `""`), one(`{"t":"binData","s":256}`, `""`), one(`{"t":"binData","s":-1}`, `""`),
		one(`{"t":"binData","s":1.0}`, `""`), one(`{"t":"binData","s":"0"}`, `""`),
		one(`{"t":"regex"}`, `"a"`), one(`{"t":"regex","o":1}`, `"a"`), one(`{"t":"regex","o":"\u0000"}`, `"a"`),
		// Values that are not their schema's type.
		one(`{"t":"int"}`, `"1"`), one(`{"t":"int"}`, `true`), one(`{"t":"string"}`, `1`), one(`{"t":"double"}`, `"1"`),
		one(`{"t":"bool"}`, `1`), one(`{"t":"bool"}`, `"true"`), one(`{"t":"bool"}`, `tru`), one(`{"t":"null"}`, `1`),
		one(`{"t":"null"}`, `nul`), one(`{"t":"object","$s":{}}`, `[]`), one(`{"t":"array","i":[]}`, `{}`),
		one(`{"t":"objectId"}`, `"65a1b2c3d4e5f60718293a4"`), one(`{"t":"objectId"}`, `"65a1b2c3d4e5f60718293a4bb"`),
		one(`{"t":"objectId"}`, `"65a1b2c3d4e5f60718293a4g"`), one(`{"t":"objectId"}`, `1`),
		one(`{"t":"binData","s":0}`, `"AAA"`), one(`{"t":"binData","s":0}`, `"A==="`), one(`{"t":"binData","s":0}`, `"!!!!"`),
		one(`{"t":"binData","s":0}`, `[1]`), one(`{"t":"regex","o":""}`, `1`), one(`{"t":"regex","o":""}`, `"a\u0000b"`),
		one(`{"t":"date"}`, `"1970-01-01"`), one(`{"t":"timestamp"}`, `{}`),
		// Arrays and objects that do not match their schemas.
		one(`{"t":"array","i":[{"t":"int"}]}`, `[]`), one(`{"t":"array","i":[]}`, `[1]`),
		one(`{"t":"array","i":[{"t":"int"}]}`, `[1,2]`), one(`{"t":"array","i":[{"t":"int"}]}`, `["1"]`),
		one(`{"t":"array","i":[{"t":"int"}]}`, `[1,]`), one(`{"t":"array","i":[{"t":"int"}]}`, `[1`),
		one(`{"t":"object","$s":{"p":{"a":{"t":"int"}},"$k":["a"]}}`, `{}`),
		one(`{"t":"object","$s":{"p":{"a":{"t":"int"}},"$k":["a"]}}`, `{"b":1}`),
		one(`{"t":"object","$s":{"p":{"a":{"t":"int"}},"$k":["a"]}}`, `{"a":1,"b":1}`),
		one(`{"t":"object","$s":{"p":{"a":{"t":"int"}},"$k":["a"]}}`, `{"a":1,"a":1}`),
		one(`{"t":"object","$s":{"p":{"a":{"t":"int"}},"$k":["a"]}}`, `{"a":"1"}`),
		one(`{"t":"object","$s":{}}`, `{"a":1}`),
		// Numbers.
		one(`{"t":"int"}`, `2147483648`), one(`{"t":"int"}`, `-2147483649`), one(`{"t":"int"}`, `1.0`), one(`{"t":"int"}`, `1e2`),
		one(`{"t":"long"}`, `9223372036854775808`), one(`{"t":"long"}`, `-9223372036854775809`), one(`{"t":"long"}`, `99999999999999999999999`),
		one(`{"t":"long"}`, `1.5`), one(`{"t":"date"}`, `1.5`), one(`{"t":"date"}`, `9223372036854775808`),
		one(`{"t":"timestamp"}`, `-1`), one(`{"t":"timestamp"}`, `-0`), one(`{"t":"timestamp"}`, `18446744073709551616`),
		one(`{"t":"double"}`, `1e400`), one(`{"t":"double"}`, `-1e400`), one(`{"t":"double"}`, `NaN`), one(`{"t":"double"}`, `Infinity`),
		one(`{"t":"double"}`, `-Infinity`), one(`{"t":"double"}`, `01`), one(`{"t":"double"}`, `+1`), one(`{"t":"double"}`, `.5`),
		one(`{"t":"double"}`, `1.`), one(`{"t":"double"}`, `-`), one(`{"t":"double"}`, `1e`), one(`{"t":"double"}`, `1e+`),
		one(`{"t":"double"}`, `0x10`), one(`{"t":"double"}`, `1_000`), one(`{"t":"int"}`, `-01`),
		// Strings.
		one(`{"t":"string"}`, `"abc`), one(`{"t":"string"}`, "\"a\nb\""), one(`{"t":"string"}`, "\"a\x00b\""), one(`{"t":"string"}`, "\"a\x1fb\""),
		one(`{"t":"string"}`, `"\x41"`), one(`{"t":"string"}`, `"\u12"`), one(`{"t":"string"}`, `"\uZZZZ"`), one(`{"t":"string"}`, `"\`),
		one(`{"t":"string"}`, `'a'`), one(`{"t":"string"}`, `"\'"`),
	}
	for _, text := range bad {
		dst := []byte("prefix")
		got, err := Decode(dst, []byte(text))
		if err == nil {
			t.Errorf("Decode(%s) = %s, want an error", text, bson.Raw(got[len("prefix"):]))
			continue
		}
		if string(got) != "prefix" {
			t.Errorf("Decode(%s) failed (%v) but returned %q", text, err, got)
		}
		if !strings.HasPrefix(err.Error(), "sjson: ") {
			t.Errorf("Decode(%s): error %q", text, err)
		}
	}
}

// Every proper prefix of a text, and the text with a byte dropped or changed, is an
// error or (rarely, for a change inside a value) another valid document: never a
// panic, and never a document encoding/json reads differently.
func TestDecodeDamagedTexts(t *testing.T) {
	for _, text := range ferretTexts(t) {
		for i := 0; i < len(text); i += 1 + len(text)/200 {
			if got, err := Decode(nil, text[:i]); err == nil {
				t.Fatalf("Decode(%s) = %s, want an error", text[:i], bson.Raw(got))
			}
			checkDecode(t, append(bytes.Clone(text[:i]), text[i+1:]...))
			for _, c := range []byte{'"', '\\', '{', '}', '[', ']', ',', ':', '0', 'x', ' ', 0x80} {
				damaged := bytes.Clone(text)
				damaged[i] = c
				checkDecode(t, damaged)
			}
		}
	}
}

func TestDecodeNestedTooDeeply(t *testing.T) {
	const n = 100000
	elem := strings.Repeat(`{"t":"array","i":[`, n) + `{"t":"int"}` + strings.Repeat(`]}`, n)
	value := strings.Repeat(`[`, n) + `1` + strings.Repeat(`]`, n)
	if _, err := Decode(nil, []byte(one(elem, value))); err == nil {
		t.Error("a 100,000-level array decoded")
	}
	elem = strings.Repeat(`{"t":"object","$s":{"p":{"a":`, n) + `{"t":"int"}` + strings.Repeat(`},"$k":["a"]}}`, n)
	if _, err := Decode(nil, []byte(one(elem, `1`))); err == nil {
		t.Error("a 100,000-level object decoded")
	}
	// What FerretDB stores (BSON nests 100 levels at most) decodes.
	const ok = 150
	elem = strings.Repeat(`{"t":"object","$s":{"p":{"a":`, ok) + `{"t":"int"}` + strings.Repeat(`},"$k":["a"]}}`, ok)
	value = strings.Repeat(`{"a":`, ok) + `1` + strings.Repeat(`}`, ok)
	if _, err := checkDecode(t, []byte(one(elem, value))); err != nil {
		t.Errorf("150 levels: %v", err)
	}
}

// Texts FerretDB does not write but reads (members out of $k's order, the schema not
// first, blanks, escaped names, null for any type) decode as it reads them.
func TestDecodeValidVariations(t *testing.T) {
	canonical := `{"$s":{"p":{"_id":{"t":"int"},"a":{"t":"string"},"b":{"t":"object","$s":{"p":{"x":{"t":"long"},"y":{"t":"bool"}},"$k":["x","y"]}}},"$k":["_id","a","b"]},"_id":1,"a":"s","b":{"x":2,"y":true}}`
	want, err := checkDecode(t, []byte(canonical))
	if err != nil {
		t.Fatal(err)
	}
	same := []string{
		`{"$s":{"p":{"_id":{"t":"int"},"a":{"t":"string"},"b":{"t":"object","$s":{"p":{"x":{"t":"long"},"y":{"t":"bool"}},"$k":["x","y"]}}},"$k":["_id","a","b"]},"b":{"y":true,"x":2},"a":"s","_id":1}`,
		`{"_id":1,"$s":{"p":{"_id":{"t":"int"},"a":{"t":"string"},"b":{"t":"object","$s":{"p":{"x":{"t":"long"},"y":{"t":"bool"}},"$k":["x","y"]}}},"$k":["_id","a","b"]},"a":"s","b":{"x":2,"y":true}}`,
		`{"_id":1,"a":"s","b":{"x":2,"y":true},"$s":{"p":{"_id":{"t":"int"},"a":{"t":"string"},"b":{"t":"object","$s":{"p":{"x":{"t":"long"},"y":{"t":"bool"}},"$k":["x","y"]}}},"$k":["_id","a","b"]}}`,
		`{"$s":{"$k":["_id","a","b"],"p":{"b":{"$s":{"$k":["x","y"],"p":{"y":{"t":"bool"},"x":{"t":"long"}}},"t":"object"},"a":{"t":"string"},"_id":{"t":"int"}}},"_id":1,"a":"s","b":{"x":2,"y":true}}`,
		" \t\r\n{ \"$s\" : { \"p\" : { \"_id\" : { \"t\" : \"int\" } , \"a\" : { \"t\" : \"string\" } , \"b\" : { \"t\" : \"object\" , \"$s\" : { \"p\" : { \"x\" : { \"t\" : \"long\" } , \"y\" : { \"t\" : \"bool\" } } , \"$k\" : [ \"x\" , \"y\" ] } } } , \"$k\" : [ \"_id\" , \"a\" , \"b\" ] } , \"_id\" : 1 , \"a\" : \"s\" , \"b\" : { \"x\" : 2 , \"y\" : true } }",
		`{"\u0024s":{"\u0070":{"_id":{"\u0074":"\u0069nt"},"\u0061":{"t":"string"},"b":{"t":"object","$s":{"p":{"x":{"t":"long"},"y":{"t":"bool"}},"$k":["x","\u0079"]}}},"$k":["_id","a","b"]},"_id":1,"a":"s","b":{"\u0078":2,"y":true}}`,
	}
	for _, text := range same {
		got, err := checkDecode(t, []byte(text))
		if err != nil {
			t.Errorf("Decode(%s): %v", text, err)
		} else if !bytes.Equal(got, want) {
			t.Errorf("Decode(%s) = %s, want %s", text, bson.Raw(got), bson.Raw(want))
		}
	}

	// null is a null whatever the schema says (as FerretDB reads it).
	for _, elem := range []string{`{"t":"null"}`, `{"t":"int"}`, `{"t":"binData","s":4}`, `{"t":"object","$s":{}}`, `{"t":"array","i":[]}`, `{"t":"regex","o":"i"}`} {
		got, err := checkDecode(t, []byte(one(elem, `null`)))
		if err != nil {
			t.Errorf("null as %s: %v", elem, err)
		} else if v := bson.Raw(got).Lookup("v"); v.Type != bson.TypeNull {
			t.Errorf("null as %s: %s", elem, v)
		}
	}

	for _, text := range []string{`{"$s":{}}`, `{"$s":{"p":{},"$k":[]}}`} {
		got, err := checkDecode(t, []byte(text))
		if err != nil || !bytes.Equal(got, []byte{5, 0, 0, 0, 0}) {
			t.Errorf("Decode(%s) = %x, %v, want the empty document", text, got, err)
		}
	}
}

// Strings and numbers read as encoding/json (FerretDB's reader) reads them, including
// what FerretDB never writes (escaped surrogates, invalid UTF-8).
func TestDecodeStringsAndNumbersAsEncodingJSON(t *testing.T) {
	strs := []string{
		`""`, `"abc"`, `"\"\\\/\b\f\n\r\t"`, `"\u0000\u001f\u007f\u0080\u00e9\u2028\uffff"`, `"\u00E9\u00e9"`,
		`"\ud83d\ude00"`, `"\uD83D\uDE00"`, `"\ud83d"`, `"\ude00"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ud83d\ud83d\ude00"`,
		`"\ude00\ud83d"`, `"\ud83d\\ude00"`, `"\ud83d\n"`, "\"\xff\"", "\"a\xc3\"", "\"\xed\xa0\x80\"", "\"\xc0\x80\"",
		"\"\xf4\x90\x80\x80\"", "\"\xef\xbf\xbd\"", "\"é😀\"", `"\u003c\u0026\u003e"`, "\"\x7f\"",
	}
	for _, s := range strs {
		for _, elem := range []string{`{"t":"string"}`, `{"t":"regex","o":"i"}`} {
			text := one(elem, s)
			if _, err := checkDecode(t, []byte(text)); err != nil && !strings.Contains(s, `\u0000`) {
				t.Errorf("Decode(%s): %v", text, err)
			}
		}
		// ... and as names.
		text := `{"$s":{"p":{` + s + `:{"t":"int"}},"$k":[` + s + `]},` + s + `:1}`
		if _, err := checkDecode(t, []byte(text)); err != nil && !strings.Contains(s, `\u0000`) {
			t.Errorf("Decode(%s): %v", text, err)
		}
	}

	nums := []string{
		`0`, `-0`, `1`, `-1`, `2147483647`, `2147483648`, `-2147483648`, `-2147483649`, `4294967295`, `4294967296`,
		`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `-9223372036854775809`,
		`18446744073709551615`, `18446744073709551616`, `99999999999999999999`, `-99999999999999999999`,
		`9007199254740993`, `1.0`, `-0.0`, `0.1`, `1e2`, `1E2`, `1e+2`, `1e-2`, `-1.5e-3`, `5e-324`, `4e-324`, `2e-324`,
		`1e-400`, `1e308`, `1.7976931348623157e308`, `1.7976931348623158e308`, `1.7976931348623159e308`, `1e309`,
		`123456789012345678901234567890`, `0.30000000000000004`, `2.2250738585072011e-308`, `9007199254740993.0`,
	}
	for _, n := range nums {
		for _, typ := range []string{"double", "int", "long", "date", "timestamp"} {
			text := []byte(one(`{"t":"`+typ+`"}`, n))
			_, err := checkDecode(t, text)
			if _, refErr := refDecode(text); (err == nil) != (refErr == nil) {
				t.Errorf("%s as %s: Decode: %v, encoding/json: %v", n, typ, err, refErr)
			}
		}
	}
}

func TestDecodeAppendsToDst(t *testing.T) {
	text := ferretTexts(t)[0]
	alone, err := Decode(nil, text)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 3, 1000)
	copy(dst, "abc")
	got, err := Decode(dst, text)
	if err != nil || string(got[:3]) != "abc" || !bytes.Equal(got[3:], alone) {
		t.Fatalf("Decode(abc, text) = %q, %v", got, err)
	}
	got, err = Decode(got, text)
	if err != nil || !bytes.Equal(got[3+len(alone):], alone) {
		t.Fatalf("second Decode = %q, %v", got, err)
	}
}

func TestDecodeConcurrently(t *testing.T) {
	texts := ferretTexts(t)
	want := make([][]byte, len(texts))
	for i, text := range texts {
		var err error
		if want[i], err = Decode(nil, text); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for r := range 200 {
				i := (r*7 + g) % len(texts)
				got, err := Decode(buf[:0], texts[i])
				if err != nil || !bytes.Equal(got, want[i]) {
					errs <- fmt.Errorf("goroutine %d, text %d: %v", g, i, err)
					return
				}
				buf = got
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// FuzzDecode: Decode never panics, and whatever it decodes is valid BSON that
// encoding/json reads the same way.
func FuzzDecode(f *testing.F) {
	for _, text := range ferretTexts(f) {
		f.Add(text)
	}
	f.Add([]byte(one(`{"t":"array","i":[{"t":"string"},{"t":"object","$s":{"p":{"a":{"t":"regex","o":"i"}},"$k":["a"]}}]}`, `["\ud83d\ude00",{"a":"x"}]`)))
	f.Add([]byte(`{"_id":"AAAA","$s":{"$k":["_id"],"p":{"_id":{"t":"binData","s":2}}}}`))
	f.Fuzz(func(t *testing.T, text []byte) {
		checkDecode(t, text)
	})
}
