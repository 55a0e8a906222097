// Package testdicom writes small, valid DICOM instances for tests: a CT
// slice in any uncompressed syntax, with chosen identifiers, so tests own
// their fixtures instead of shipping binary files.
package testdicom

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math/big"
	"os"
	"path/filepath"

	"github.com/relais-health/relais/dicom"
)

// UID returns a fresh UID under the 2.25 root (PS3.5 B.2).
func UID() string {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return "2.25." + n.String()
}

// CT describes one CT slice.
type CT struct {
	PatientName, PatientID      string
	StudyUID, SeriesUID, SOPUID string
	StudyDescription            string
	AccessionNumber             string
	Charset                     string // Specific Character Set, "" for none
	Instance                    int
	Rows, Columns               int // default 64×64
	TransferSyntax              string
	SOPClassOverride            string // a different SOP Class UID in the data set
	// PatientNameRaw, when set, is written as the Patient's Name bytes
	// as they are (e.g. ISO 2022 escape sequences) instead of PatientName.
	PatientNameRaw []byte
	// StudyDate, StudyTime and Modality default to 20261123, 031500, CT.
	StudyDate, StudyTime, Modality string
	// OtherPatientIDs, when set, are written as the Other Patient IDs
	// Sequence (0010,1002), one item each.
	OtherPatientIDs []OtherPatientID
	// ProcedureCodes, when set, are written as the Procedure Code Sequence
	// (0008,1032), one item each.
	ProcedureCodes []Code
}

// OtherPatientID is an item of the Other Patient IDs Sequence: Patient ID,
// Issuer of Patient ID and Type of Patient ID (each written when set).
type OtherPatientID struct {
	ID, Issuer, Type string
}

// Code is a code sequence item: Code Value, Coding Scheme Designator and
// Code Meaning.
type Code struct {
	Value, Scheme, Meaning string
}

// sequence writes a sequence of explicit-length items, each item's
// elements given as tag, VR and value, in ascending tag order; empty
// values are left out.
func sequence(e *dicom.Encoder, ts dicom.TransferSyntax, t dicom.Tag, items [][]itemElement) error {
	if len(items) == 0 {
		return nil
	}
	enc := make([][]byte, 0, len(items))
	for _, it := range items {
		var b bytes.Buffer
		ie := dicom.NewEncoder(&b, ts)
		for _, el := range it {
			if el.value == "" {
				continue
			}
			if err := ie.WriteString(el.tag, el.vr, el.value); err != nil {
				return err
			}
		}
		enc = append(enc, b.Bytes())
	}
	return e.WriteSequence(t, enc, false)
}

type itemElement struct {
	tag   dicom.Tag
	vr    dicom.VR
	value string
}

// Dataset encodes the slice's data set (without file meta) in its syntax.
func (c *CT) Dataset() ([]byte, error) {
	if c.Rows == 0 {
		c.Rows, c.Columns = 64, 64
	}
	if c.TransferSyntax == "" {
		c.TransferSyntax = dicom.ExplicitVRLittleEndian
	}
	ts, ok := dicom.LookupTransferSyntax(c.TransferSyntax)
	if !ok {
		return nil, fmt.Errorf("testdicom: unknown syntax %s", c.TransferSyntax)
	}
	var b bytes.Buffer
	e := dicom.NewEncoder(&b, ts)
	cls := dicom.CTImageStorage
	if c.SOPClassOverride != "" {
		cls = c.SOPClassOverride
	}
	var order binary.ByteOrder = binary.LittleEndian
	if ts.BigEndian {
		order = binary.BigEndian
	}
	us := func(v int) []byte { x := make([]byte, 2); order.PutUint16(x, uint16(v)); return x }
	px := make([]byte, 2*c.Rows*c.Columns)
	for i := 0; i < c.Rows*c.Columns; i++ {
		order.PutUint16(px[2*i:], uint16((i*7+c.Instance*13)%4096))
	}
	steps := []func() error{
		func() error {
			if c.Charset == "" {
				return nil
			}
			return e.WriteString(dicom.TagSpecificCharacterSet, "CS", c.Charset)
		},
		func() error { return e.WriteString(dicom.NewTag(0x0008, 0x0008), "CS", `ORIGINAL\PRIMARY\AXIAL`) },
		func() error { return e.WriteString(dicom.TagSOPClassUID, "UI", cls) },
		func() error { return e.WriteString(dicom.TagSOPInstanceUID, "UI", c.SOPUID) },
		func() error { return e.WriteString(dicom.TagStudyDate, "DA", or(c.StudyDate, "20261123")) },
		func() error { return e.WriteString(dicom.TagStudyTime, "TM", or(c.StudyTime, "031500")) },
		func() error { return e.WriteString(dicom.TagAccessionNumber, "SH", c.AccessionNumber) },
		func() error { return e.WriteString(dicom.TagModality, "CS", or(c.Modality, "CT")) },
		func() error { return e.WriteString(dicom.TagStudyDescription, "LO", c.StudyDescription) },
		func() error {
			var items [][]itemElement
			for _, pc := range c.ProcedureCodes {
				items = append(items, []itemElement{{dicom.NewTag(0x0008, 0x0100), "SH", pc.Value},
					{dicom.NewTag(0x0008, 0x0102), "SH", pc.Scheme}, {dicom.NewTag(0x0008, 0x0104), "LO", pc.Meaning}})
			}
			return sequence(e, ts, dicom.NewTag(0x0008, 0x1032), items)
		},
		func() error {
			if c.PatientNameRaw != nil {
				return e.WriteElement(dicom.TagPatientName, "PN", c.PatientNameRaw)
			}
			return e.WriteString(dicom.TagPatientName, "PN", c.PatientName)
		},
		func() error { return e.WriteString(dicom.TagPatientID, "LO", c.PatientID) },
		func() error {
			var items [][]itemElement
			for _, o := range c.OtherPatientIDs {
				items = append(items, []itemElement{{dicom.TagPatientID, "LO", o.ID}, {dicom.TagIssuerOfPatientID, "LO", o.Issuer},
					{dicom.NewTag(0x0010, 0x0022), "CS", o.Type}})
			}
			return sequence(e, ts, dicom.TagOtherPatientIDsSequence, items)
		},
		func() error { return e.WriteString(dicom.TagStudyInstanceUID, "UI", c.StudyUID) },
		func() error { return e.WriteString(dicom.TagSeriesInstanceUID, "UI", c.SeriesUID) },
		func() error { return e.WriteString(dicom.TagSeriesNumber, "IS", "1") },
		func() error { return e.WriteString(dicom.TagInstanceNumber, "IS", fmt.Sprint(c.Instance)) },
		func() error { return e.WriteElement(dicom.NewTag(0x0028, 0x0002), "US", us(1)) },
		func() error { return e.WriteString(dicom.NewTag(0x0028, 0x0004), "CS", "MONOCHROME2") },
		func() error { return e.WriteElement(dicom.TagRows, "US", us(c.Rows)) },
		func() error { return e.WriteElement(dicom.TagColumns, "US", us(c.Columns)) },
		func() error { return e.WriteElement(dicom.TagBitsAllocated, "US", us(16)) },
		func() error { return e.WriteElement(dicom.NewTag(0x0028, 0x0101), "US", us(12)) },
		func() error { return e.WriteElement(dicom.NewTag(0x0028, 0x0102), "US", us(11)) },
		func() error { return e.WriteElement(dicom.NewTag(0x0028, 0x0103), "US", us(0)) },
		func() error { return e.WriteString(dicom.NewTag(0x0028, 0x1050), "DS", "40") },
		func() error { return e.WriteString(dicom.NewTag(0x0028, 0x1051), "DS", "80") },
		func() error { return e.WriteString(dicom.NewTag(0x0028, 0x1052), "DS", "-1024") },
		func() error { return e.WriteString(dicom.NewTag(0x0028, 0x1053), "DS", "1") },
		func() error { return e.WriteElement(dicom.TagPixelData, "OW", px) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// File encodes the slice as a Part 10 file.
func (c *CT) File() ([]byte, error) {
	ds, err := c.Dataset()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if _, err := dicom.WriteFileMeta(&b, dicom.FileMeta{
		MediaStorageSOPClassUID: dicom.CTImageStorage, MediaStorageSOPInstanceUID: c.SOPUID,
		TransferSyntaxUID: c.TransferSyntax, ImplementationClassUID: dicom.DefaultImplementationClassUID,
		ImplementationVersionName: "RELAIS_TEST",
	}); err != nil {
		return nil, err
	}
	b.Write(ds)
	return b.Bytes(), nil
}

// Study writes n slices of one new study into dir and returns their paths.
func Study(dir string, n int, ts string) ([]string, error) {
	study, series := UID(), UID()
	var paths []string
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		c := &CT{PatientName: "Test^Patient", PatientID: "P" + study[len(study)-6:], StudyUID: study, SeriesUID: series, SOPUID: UID(),
			StudyDescription: "CT HEAD AVC", AccessionNumber: "ACC1", Instance: i, TransferSyntax: ts}
		b, err := c.File()
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, fmt.Sprintf("ct%04d.dcm", i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// DatasetOf returns the data set bytes of a Part 10 file (after the meta).
func DatasetOf(path string) ([]byte, dicom.FileMeta, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, dicom.FileMeta{}, err
	}
	meta, off, err := dicom.ReadFileMeta(bytes.NewReader(b))
	if err != nil {
		return nil, meta, fmt.Errorf("%s: %w", path, err)
	}
	return b[off:], meta, nil
}
