// Package findscu is the C-FIND SCU of Relais: build an identifier from
// keys, run it on an association and hand back each answer's data set. The
// CLI (`relais find`) and routing use it.
package findscu

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/query"
)

// KeyValue is one query key: a matching key when Value is not empty, a
// return key otherwise.
type KeyValue struct {
	Tag   dicom.Tag
	Value string // UTF-8
}

// ParseKey parses "Keyword=value", "Keyword", "(gggg,eeee)=value",
// "gggg,eeee" or "ggggeeee" (an absent or empty value makes a return key).
func ParseKey(s string) (KeyValue, error) {
	name, val, _ := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if t, ok := dicom.TagByKeyword(name); ok {
		return KeyValue{Tag: t, Value: val}, nil
	}
	h := strings.NewReplacer("(", "", ")", "", ",", "", " ", "").Replace(name)
	if len(h) == 8 {
		if n, err := strconv.ParseUint(h, 16, 32); err == nil {
			return KeyValue{Tag: dicom.Tag(n), Value: val}, nil
		}
	}
	return KeyValue{}, fmt.Errorf("findscu: unknown key %q (a DICOM keyword or a tag like (0010,0020))", name)
}

// Contexts proposes the FIND SOP classes of both models, explicit then
// implicit little endian.
func Contexts() []dimse.ProposedContext {
	ts := []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian}
	return []dimse.ProposedContext{
		{AbstractSyntax: query.StudyRootFind, TransferSyntaxes: ts},
		{AbstractSyntax: query.PatientRootFind, TransferSyntaxes: ts},
	}
}

// Identifier encodes a query: Specific Character Set ISO_IR 192 when a
// value is not ASCII, the Query/Retrieve Level and the keys, in tag order.
func Identifier(level query.Level, keys []KeyValue, ts dicom.TransferSyntax) ([]byte, error) {
	els := map[dicom.Tag]string{dicom.TagQueryRetrieveLevel: string(level)}
	for _, k := range keys {
		if v, dup := els[k.Tag]; dup && k.Value == "" && v != "" {
			continue // a return key does not undo a matching key
		}
		els[k.Tag] = k.Value
		for i := 0; i < len(k.Value); i++ {
			if k.Value[i] >= 0x80 {
				els[dicom.TagSpecificCharacterSet] = "ISO_IR 192"
			}
		}
	}
	tags := make([]dicom.Tag, 0, len(els))
	for t := range els {
		tags = append(tags, t)
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i] < tags[j] })
	var b bytes.Buffer
	enc := dicom.NewEncoder(&b, ts)
	for _, t := range tags {
		vr := dicom.LookupVR(t)
		var err error
		switch vr {
		case "":
			err = fmt.Errorf("findscu: no VR known for %s", t)
		case dicom.VRSQ:
			err = enc.WriteHeader(t, vr, 0)
		default:
			err = enc.WriteString(t, vr, els[t])
		}
		if err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// Find runs a C-FIND of model at level on a (which must have accepted the
// model's FIND SOP class) and calls fn with each answer; when fn returns
// false the query is cancelled (C-CANCEL-RQ). It returns the final status;
// a failure status is returned as the status with a nil error.
func Find(ctx context.Context, a *dimse.Association, model query.Model, level query.Level, keys []KeyValue, fn func(*dicom.Dataset) bool) (dimse.Status, error) {
	var pc dimse.PresentationContext
	ok := false
	for _, tsUID := range []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian} {
		if pc, ok = a.FindContext(model.FindSOPClass(), tsUID); ok {
			break
		}
	}
	if !ok {
		return dimse.Status{}, fmt.Errorf("findscu: the peer did not accept %s FIND", model)
	}
	ts, ok := dicom.LookupTransferSyntax(pc.TransferSyntax)
	if !ok {
		return dimse.Status{}, fmt.Errorf("findscu: unknown transfer syntax %s", pc.TransferSyntax)
	}
	id, err := Identifier(level, keys, ts)
	if err != nil {
		return dimse.Status{}, err
	}
	var scanErr error
	st, err := a.Find(ctx, pc, id, func(_ dimse.Status, data []byte) bool {
		res, err := dicom.Scan(bytes.NewReader(data), ts, dicom.DefaultLimits(), dicom.WantAll)
		if err != nil {
			scanErr = fmt.Errorf("findscu: answer: %w", err)
			return false
		}
		return fn(res.Dataset)
	})
	if err != nil {
		return st, err
	}
	if scanErr != nil {
		return st, scanErr
	}
	return st, nil
}
