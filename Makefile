# The whole test suite: vet, unit and integration tests against real peers
# (dcmtk, versitygw), then every fuzz target for a bounded time.
FUZZTIME ?= 10s
GO ?= go

.PHONY: test unit fuzz build bench

test: unit fuzz

build:
	$(GO) build -o relais ./cmd/relais

unit:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

fuzz:
	$(GO) test ./dicom -run '^$$' -fuzz '^FuzzScan$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dicom -run '^$$' -fuzz '^FuzzReadFileMeta$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dimse -run '^$$' -fuzz '^FuzzReadPDU$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dimse -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dimse -run '^$$' -fuzz '^FuzzAssociation$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dicom/charset -run '^$$' -fuzz '^FuzzCharsetDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./query -run '^$$' -fuzz '^FuzzWildcard$$' -fuzztime $(FUZZTIME)
	$(GO) test ./query -run '^$$' -fuzz '^FuzzIdentifier$$' -fuzztime $(FUZZTIME)
	$(GO) test ./retrieve -run '^$$' -fuzz '^FuzzParseIdentifier$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dicomjson -run '^$$' -fuzz '^FuzzWriteDataset$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dicomjson -run '^$$' -fuzz '^FuzzWriteAttrs$$' -fuzztime $(FUZZTIME)
	$(GO) test ./imaging -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME)
	$(GO) test ./imaging -run '^$$' -fuzz '^FuzzPixels$$' -fuzztime $(FUZZTIME)
	$(GO) test ./stow -run '^$$' -fuzz '^FuzzStore$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dicomweb -run '^$$' -fuzz '^FuzzRequestParsing$$' -fuzztime $(FUZZTIME)
	$(GO) test ./dicom -run '^$$' -fuzz '^FuzzEdit$$' -fuzztime $(FUZZTIME)
	$(GO) test ./coerce -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME)
	$(GO) test ./routing/calendar -run '^$$' -fuzz '^FuzzParseRota$$' -fuzztime $(FUZZTIME)
	$(GO) test ./routing/calendar -run '^$$' -fuzz '^FuzzParseWindow$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pdf -run '^$$' -fuzz '^FuzzText$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pdf -run '^$$' -fuzz '^FuzzWrap$$' -fuzztime $(FUZZTIME)
	$(GO) test ./report -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/websocket -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME)
	$(GO) test ./telerequest -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME)
	$(GO) test ./ups -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME)

bench:
	$(GO) run ./bench/storebench -n 500 -runs 3
