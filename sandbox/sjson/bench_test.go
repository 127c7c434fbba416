package sjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// representative is the stored text of sjsonRepresentative(12) of
// sandbox/shard/sjson_test.go: 18 fields of every common type, a nested document, an
// array of three documents, about 700 bytes of BSON in 2.2 KiB of text (the schema is
// more than half of it).
func representative(b *testing.B) []byte {
	for _, text := range ferretTexts(b) {
		if bytes.Contains(text, []byte(`"_id":12,`)) {
			return text
		}
	}
	b.Fatal("no representative text")
	return nil
}

// BenchmarkDecodeSameShape decodes documents of one schema, as a scan of a
// collection of one shape does (the schema is parsed once).
func BenchmarkDecodeSameShape(b *testing.B) {
	text := representative(b)
	bench(b, [][]byte{text})
}

// BenchmarkDecodeNewShapes decodes documents whose schemas change from one to the
// next (more distinct schemas than the decoder keeps): every schema is parsed.
func BenchmarkDecodeNewShapes(b *testing.B) {
	text := representative(b)
	var texts [][]byte
	for i := range schemaCache + 1 {
		texts = append(texts, bytes.ReplaceAll(text, []byte(`"version"`), []byte(fmt.Sprintf(`"version%d"`, i))))
	}
	bench(b, texts)
}

func bench(b *testing.B, texts [][]byte) {
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(texts[0])))
	b.ResetTimer()
	for i := range b.N {
		var err error
		if buf, err = Decode(buf[:0], texts[i%len(texts)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)), "bson-bytes")
}

// BenchmarkDecodeBaselineEncodingJSON is the cost of merely reading the same text
// with encoding/json into Go values, for comparison.
func BenchmarkDecodeBaselineEncodingJSON(b *testing.B) {
	text := representative(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	for range b.N {
		var v map[string]any
		if err := json.Unmarshal(text, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeBaselineReference is the tests' encoding/json-based decoder.
func BenchmarkDecodeBaselineReference(b *testing.B) {
	text := representative(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	for range b.N {
		if _, err := refDecode(text); err != nil {
			b.Fatal(err)
		}
	}
}
