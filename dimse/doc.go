// Package dimse implements the DICOM upper layer protocol (PS3.8) and the
// DIMSE message exchange (PS3.7) for Relais: PDU encoding and decoding,
// the association state machine, presentation context negotiation, P-DATA
// fragmentation and streaming reassembly, and an association server and
// client shaped like net/http.
//
// Layers, bottom up:
//
//   - pdu.go: the seven PDU types of PS3.8 Section 9.3 and their items
//     (PS3.8 Tables 9-11 to 9-26 and Annex D). ReadPDU treats every length
//     from the wire as hostile.
//   - fsm.go: the association state machine of PS3.8 Section 9.2, table
//     driven and pure (Sta1–Sta13, Evt1–Evt19, AE-n/DT-n/AR-n/AA-n).
//   - negotiate.go: presentation context negotiation as a pure function.
//   - command.go, status.go: DIMSE command sets (PS3.7 Section 9.3 and
//     Annex E) and status codes (PS3.7 Annex C).
//   - assoc.go, stream.go: the per-association engine shared by Server and
//     Dial: one reader goroutine per association, P-DATA reassembly into a
//     bounded stream of pooled buffers (streamDepth PDVs), fragmentation
//     on send with one writev per PDU.
//   - types.go, server.go, mux.go: Handler, ResponseWriter, Request,
//     Event, Server, ServeMux.
//   - client.go: Dial and Association (C-ECHO, C-STORE, C-FIND and a
//     generic Do as SCU).
//
// Limits of this version: one operation at a time per association (the
// asynchronous operations window is answered 1/1); while a handler does
// not read Request.Data the reader goroutine waits for it (that is the
// backpressure bounding memory), so an A-ABORT sent by the peer in that
// moment is seen only once the handler reads or returns; no TLS (wrap the
// net.Listener or use a tls.Conn-producing listener).
//
// The engine owns protocol failures: malformed PDUs, unexpected PDUs and
// P-DATA on unaccepted presentation contexts end in an A-ABORT, an
// unreadable request is answered with a failure status, and handlers never
// see either. Handlers answer with a Status through a ResponseWriter.
//
// The package is standalone: transfer syntaxes and SOP classes are plain
// UID strings.
package dimse
