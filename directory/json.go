package directory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/relais-health/relais/config"
)

// The JSON of entries uses the configuration's YAML key names (snake_case),
// read from the yaml struct tags of the config types so that a field added
// there appears here too.

type field struct {
	name  string
	index int
}

func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out = append(out, field{name, i})
	}
	return out
}

// kv is a key and value written before the fields (id, source).
type kv struct {
	k string
	v any
}

// encodeFields writes v (a struct) as a JSON object keyed by yaml names,
// after pre. Nil slices are written as [].
func encodeFields(v any, pre []kv) ([]byte, error) {
	rv := reflect.ValueOf(v)
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	put := func(k string, v any) error {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
		return nil
	}
	for _, p := range pre {
		if err := put(p.k, p.v); err != nil {
			return nil, err
		}
	}
	for _, f := range fieldsOf(rv.Type()) {
		fv := rv.Field(f.index)
		val := fv.Interface()
		if fv.Kind() == reflect.Slice && fv.IsNil() {
			val = reflect.MakeSlice(fv.Type(), 0, 0).Interface()
		}
		if err := put(f.name, val); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// decodeFields reads a JSON object keyed by yaml names into dst (a pointer
// to a struct). With meta, the keys "id" and "source" are accepted and
// their string values returned. A wrong field is a *config.KeyError whose
// key is key + "." + the field's name.
func decodeFields(raw []byte, key string, dst any, meta bool) (id, source string, err error) {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&obj); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalidJSON, err)
	}
	if dec.More() {
		return "", "", fmt.Errorf("%w: trailing data after the object", ErrInvalidJSON)
	}
	if obj == nil {
		return "", "", fmt.Errorf("%w: not an object", ErrInvalidJSON)
	}
	rv := reflect.ValueOf(dst).Elem()
	byName := map[string]int{}
	for _, f := range fieldsOf(rv.Type()) {
		byName[f.name] = f.index
	}
	for _, name := range sortedKeys(obj) {
		v := obj[name]
		if meta && (name == "id" || name == "source") {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return "", "", &config.KeyError{Key: key + "." + name, Msg: "must be a string"}
			}
			if name == "id" {
				id = s
			} else {
				source = s
			}
			continue
		}
		i, ok := byName[name]
		if !ok {
			return "", "", &config.KeyError{Key: key + "." + name, Msg: "unknown field"}
		}
		fv := rv.Field(i)
		if err := json.Unmarshal(v, fv.Addr().Interface()); err != nil {
			want := "a string"
			if fv.Kind() == reflect.Slice {
				want = "a list of strings"
			}
			return "", "", &config.KeyError{Key: key + "." + name, Msg: "must be " + want}
		}
	}
	return id, source, nil
}

// MarshalJSON writes the entry as one object: "id", "source" and the
// value's fields under their configuration names.
func (e Entry[T]) MarshalJSON() ([]byte, error) {
	return encodeFields(e.Value, []kv{{"id", e.ID}, {"source", e.Source}})
}

// UnmarshalJSON reads what MarshalJSON writes (unknown fields are errors).
func (e *Entry[T]) UnmarshalJSON(b []byte) error {
	var v T
	id, src, err := decodeFields(b, "entry", &v, true)
	if err != nil {
		return err
	}
	*e = Entry[T]{ID: id, Source: src, Value: v}
	return nil
}
