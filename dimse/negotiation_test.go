package dimse_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/dimse/dimsetest"
)

// TestAdmitSeesRequest: Admit gets the user identity, async window,
// implementation and contexts; the A-ASSOCIATE-AC answers the async
// window with 1/1, the user identity with 59H, and picks transfer syntaxes
// in the server's order.
func TestAdmitSeesRequest(t *testing.T) {
	var mu sync.Mutex
	var seen *dimse.AssociateRequest
	srv := dimsetest.NewServer(t, &dimse.Server{AETitle: "RELAIS", Handler: newMux(newSink()),
		TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian, dimse.ExplicitVRLittleEndian},
		Admit: func(ctx context.Context, rq *dimse.AssociateRequest) *dimse.Rejection {
			mu.Lock()
			seen = rq
			mu.Unlock()
			if rq.UserIdentity == nil || string(rq.UserIdentity.Secondary) != "pw" {
				return &dimse.Rejection{Result: dimse.RejectedPermanent, Source: dimse.SourceServiceUser, Reason: dimse.ReasonNoReasonGiven}
			}
			return nil
		}})
	p := dimsetest.DialPeer(t, srv.Addr)
	rq := dimsetest.AssociateRQ("RAW", "RELAIS", dimse.PresentationContextRQItem{ID: 3, AbstractSyntax: ctImageStorage,
		TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian, dimse.ImplicitVRLittleEndian}},
		dimse.PresentationContextRQItem{ID: 5, AbstractSyntax: "1.2.3.4.5", TransferSyntaxes: []string{dimse.ImplicitVRLittleEndian}},
		dimse.PresentationContextRQItem{ID: 7, AbstractSyntax: ctImageStorage, TransferSyntaxes: []string{"1.2.3.4.5.6"}})
	rq.UserInfo.AsyncOps = &dimse.AsyncOpsWindow{MaxOpsInvoked: 5, MaxOpsPerformed: 5}
	rq.UserInfo.UserIdentity = &dimse.UserIdentity{Type: 2, PositiveResponseRequested: true, Primary: []byte("alice"), Secondary: []byte("pw")}
	rq.UserInfo.ImplementationVersionName = "RAWPEER"
	ac := p.Associate(rq)
	if ac.UserInfo.AsyncOps == nil || *ac.UserInfo.AsyncOps != (dimse.AsyncOpsWindow{MaxOpsInvoked: 1, MaxOpsPerformed: 1}) {
		t.Errorf("async ops %+v", ac.UserInfo.AsyncOps)
	}
	if ac.UserInfo.UserIdentityAC == nil {
		t.Errorf("no user identity AC")
	}
	if ac.UserInfo.MaxLength != dimse.DefaultMaxPDULength || ac.UserInfo.ImplementationClassUID == "" {
		t.Errorf("user info %+v", ac.UserInfo)
	}
	want := []dimse.PresentationContextACItem{
		{ID: 1, Result: dimse.PCAcceptance, TransferSyntax: dimse.ImplicitVRLittleEndian},
		{ID: 3, Result: dimse.PCAcceptance, TransferSyntax: dimse.ImplicitVRLittleEndian}, // server's preference wins
		{ID: 5, Result: dimse.PCAbstractSyntaxNotSupported, TransferSyntax: dimse.ImplicitVRLittleEndian},
		{ID: 7, Result: dimse.PCTransferSyntaxesNotSupported, TransferSyntax: "1.2.3.4.5.6"},
	}
	for i, w := range want {
		if ac.Contexts[i] != w {
			t.Errorf("context %d: %+v, want %+v", i, ac.Contexts[i], w)
		}
	}
	mu.Lock()
	if seen.MaxOpsInvoked != 5 || seen.ImplementationVersionName != "RAWPEER" || len(seen.Contexts) != 4 || string(seen.UserIdentity.Primary) != "alice" || seen.RemoteAddr == nil {
		t.Errorf("Admit saw %+v", seen)
	}
	mu.Unlock()
	p.SendPDU(&dimse.AReleaseRQ{})
	p.Expect(dimse.PDUReleaseRP)
	p.Close() // AR-3: the requestor closes; the acceptor waits for it (Sta13)
	srv.WaitEvent(t, 5*time.Second, dimsetest.Kind(dimse.AssociationReleased))

	// Without the password: rejected, and Dial reports the rejection.
	_, err := dimse.Dial(context.Background(), srv.Addr, dimse.DialOptions{CallingAE: "SCU", CalledAE: "RELAIS",
		UserIdentity: &dimse.UserIdentity{Type: 1, Primary: []byte("bob")}})
	var rj *dimse.Rejection
	if !errors.As(err, &rj) || rj.Reason != dimse.ReasonNoReasonGiven {
		t.Fatalf("Dial: %v", err)
	}
}

// TestReleaseCollision: both sides send A-RELEASE-RQ (PS3.8 Section
// 7.2.3); the requestor answers in Sta9 (AR-9) and completes in Sta11
// (AR-3).
func TestReleaseCollision(t *testing.T) {
	l := listenLoopback(t)
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		p, _ := dimse.ReadPDU(c, 1<<20)
		rq := p.(*dimse.AAssociateRQ)
		ac := &dimse.AAssociateAC{ProtocolVersion: 1, ApplicationContext: rq.ApplicationContext,
			Contexts: []dimse.PresentationContextACItem{{ID: rq.Contexts[0].ID, TransferSyntax: dimse.ImplicitVRLittleEndian}}}
		dimse.WritePDU(c, ac)
		if p, err = dimse.ReadPDU(c, 1<<20); err != nil || p.Type() != dimse.PDUReleaseRQ {
			done <- errors.New("no A-RELEASE-RQ")
			return
		}
		dimse.WritePDU(c, &dimse.AReleaseRQ{}) // collision
		if p, err = dimse.ReadPDU(c, 1<<20); err != nil || p.Type() != dimse.PDUReleaseRP {
			done <- errors.New("no A-RELEASE-RP from the requestor")
			return
		}
		done <- dimse.WritePDU(c, &dimse.AReleaseRP{})
	}()
	as, err := dimse.Dial(context.Background(), l.Addr().String(), dimse.DialOptions{CallingAE: "A", CalledAE: "B"})
	if err != nil {
		t.Fatal(err)
	}
	if err := as.Release(context.Background()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
