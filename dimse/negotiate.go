package dimse

// Transfer syntax UIDs (PS3.5 Section 10 and Annex A) used by the defaults.
const (
	ImplicitVRLittleEndian         = "1.2.840.10008.1.2"
	ExplicitVRLittleEndian         = "1.2.840.10008.1.2.1"
	DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
	ExplicitVRBigEndian            = "1.2.840.10008.1.2.2"
	// VerificationSOPClass is the Verification SOP Class (PS3.4 Annex A).
	VerificationSOPClass = "1.2.840.10008.1.1"
)

// DefaultTransferSyntaxes is the server's default preference order: the
// uncompressed syntaxes first, then deflate and the common compressed ones
// (JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE, MPEG/HEVC).
var DefaultTransferSyntaxes = []string{
	ExplicitVRLittleEndian,
	ImplicitVRLittleEndian,
	ExplicitVRBigEndian,
	DeflatedExplicitVRLittleEndian,
	"1.2.840.10008.1.2.4.50",  // JPEG baseline
	"1.2.840.10008.1.2.4.51",  // JPEG extended
	"1.2.840.10008.1.2.4.57",  // JPEG lossless
	"1.2.840.10008.1.2.4.70",  // JPEG lossless SV1
	"1.2.840.10008.1.2.4.80",  // JPEG-LS lossless
	"1.2.840.10008.1.2.4.81",  // JPEG-LS near-lossless
	"1.2.840.10008.1.2.4.90",  // JPEG 2000 lossless
	"1.2.840.10008.1.2.4.91",  // JPEG 2000
	"1.2.840.10008.1.2.4.201", // HTJ2K lossless
	"1.2.840.10008.1.2.4.202", // HTJ2K lossless RPCL
	"1.2.840.10008.1.2.4.203", // HTJ2K
	"1.2.840.10008.1.2.5",     // RLE lossless
	"1.2.840.10008.1.2.4.100", // MPEG2 MP@ML
	"1.2.840.10008.1.2.4.101", // MPEG2 MP@HL
	"1.2.840.10008.1.2.4.102", // MPEG-4 AVC/H.264 HP@4.1
	"1.2.840.10008.1.2.4.103", // MPEG-4 AVC/H.264 BD-compatible HP@4.1
	"1.2.840.10008.1.2.4.104", // MPEG-4 AVC/H.264 HP@4.2 2D
	"1.2.840.10008.1.2.4.105", // MPEG-4 AVC/H.264 HP@4.2 3D
	"1.2.840.10008.1.2.4.106", // MPEG-4 AVC/H.264 Stereo HP@4.2
	"1.2.840.10008.1.2.4.107", // HEVC/H.265 Main@5.1
}

// ContextResult is the outcome of negotiating one proposed presentation
// context (PS3.8 Section 9.3.3.2, PS3.7 Annex D.3.3.4 for roles).
type ContextResult struct {
	ID             uint8
	AbstractSyntax string
	Result         PCResult
	TransferSyntax string // chosen, when Result is PCAcceptance
	// SCURole and SCPRole are the requestor's agreed roles: by default the
	// requestor is SCU only; a role selection item can change that.
	SCURole, SCPRole bool
}

// Negotiate answers the proposed presentation contexts as the association
// acceptor. A context is accepted when supported(abstract syntax) is true
// and one of its proposed transfer syntaxes appears in prefs; the first
// such syntax in prefs (the acceptor's order, not the requestor's) is
// chosen. Otherwise the result is abstract-syntax-not-supported (3) or
// transfer-syntaxes-not-supported (4). An even or repeated context ID, or a
// context without abstract syntax, is rejected with no-reason (2). Roles
// proposed by role selection are agreed as proposed. A nil supported
// accepts any abstract syntax. Negotiate does no I/O.
func Negotiate(proposed []ProposedContext, supported func(uid string) bool, prefs []string) []ContextResult {
	out := make([]ContextResult, 0, len(proposed))
	seen := make(map[uint8]bool, len(proposed))
	for _, pc := range proposed {
		r := ContextResult{ID: pc.ID, AbstractSyntax: pc.AbstractSyntax, SCURole: true}
		if pc.SCURole != nil {
			r.SCURole = *pc.SCURole
		}
		if pc.SCPRole != nil {
			r.SCPRole = *pc.SCPRole
		}
		switch {
		case pc.ID%2 == 0 || seen[pc.ID] || pc.AbstractSyntax == "":
			r.Result = PCNoReason
		case supported != nil && !supported(pc.AbstractSyntax):
			r.Result = PCAbstractSyntaxNotSupported
		default:
			r.Result = PCTransferSyntaxesNotSupported
		pref:
			for _, ts := range prefs {
				for _, p := range pc.TransferSyntaxes {
					if p == ts {
						r.Result, r.TransferSyntax = PCAcceptance, ts
						break pref
					}
				}
			}
		}
		seen[pc.ID] = true
		out = append(out, r)
	}
	return out
}

// proposedFromPDU joins the presentation context items of an
// A-ASSOCIATE-RQ with its role selection items.
func proposedFromPDU(rq *AAssociateRQ) []ProposedContext {
	roles := make(map[string]RoleSelection, len(rq.UserInfo.Roles))
	for _, r := range rq.UserInfo.Roles {
		roles[r.SOPClassUID] = r
	}
	out := make([]ProposedContext, 0, len(rq.Contexts))
	for _, pc := range rq.Contexts {
		p := ProposedContext{ID: pc.ID, AbstractSyntax: pc.AbstractSyntax, TransferSyntaxes: pc.TransferSyntaxes}
		if r, ok := roles[pc.AbstractSyntax]; ok {
			scu, scp := r.SCU, r.SCP
			p.SCURole, p.SCPRole = &scu, &scp
		}
		out = append(out, p)
	}
	return out
}
