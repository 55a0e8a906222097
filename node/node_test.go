package node

import (
	"context"
	"net"
	"testing"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dimse"
)

func TestAdmitPolicy(t *testing.T) {
	open := config.Default()
	closed := config.Default()
	closed.DICOM.AllowedCallers = []config.Caller{
		{AE: "CT1", Hosts: []string{"10.0.0.5"}},
		{AE: "MR1", Hosts: []string{"192.168.1.0/24"}},
		{AE: "ANYWHERE"},
		{AE: "LOCAL", Hosts: []string{"localhost"}},
	}
	anyCalled := config.Default()
	anyCalled.DICOM.AcceptAnyCalledAE = true
	addr := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000} }
	cases := []struct {
		name            string
		cfg             *config.Config
		calling, called string
		from            string
		want            dimse.RejectReason // 0: accepted
	}{
		{"open node accepts any caller", open, "WHOEVER", "RELAIS", "203.0.113.9", 0},
		{"open node still checks called AE", open, "WHOEVER", "PACS", "127.0.0.1", dimse.ReasonCalledAENotRecognized},
		{"called AE with trailing spaces", open, "X", "RELAIS  ", "127.0.0.1", 0},
		{"accept any called AE", anyCalled, "X", "PACS", "127.0.0.1", 0},
		{"listed AE from its host", closed, "CT1", "RELAIS", "10.0.0.5", 0},
		{"listed AE from another host", closed, "CT1", "RELAIS", "10.0.0.6", dimse.ReasonCallingAENotRecognized},
		{"listed AE in its CIDR", closed, "MR1", "RELAIS", "192.168.1.77", 0},
		{"listed AE outside its CIDR", closed, "MR1", "RELAIS", "192.168.2.1", dimse.ReasonCallingAENotRecognized},
		{"listed AE without hosts", closed, "ANYWHERE", "RELAIS", "198.51.100.1", 0},
		{"host name resolved", closed, "LOCAL", "RELAIS", "127.0.0.1", 0},
		{"unlisted AE", closed, "STRANGER", "RELAIS", "10.0.0.5", dimse.ReasonCallingAENotRecognized},
		{"AE titles are case-sensitive", closed, "ct1", "RELAIS", "10.0.0.5", dimse.ReasonCallingAENotRecognized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := &Node{Config: tc.cfg}
			rj := n.admit(context.Background(), &dimse.AssociateRequest{CallingAE: tc.calling, CalledAE: tc.called, RemoteAddr: addr(tc.from)})
			switch {
			case tc.want == 0 && rj != nil:
				t.Fatalf("rejected: %v", rj)
			case tc.want != 0 && rj == nil:
				t.Fatalf("accepted, want reason %v", tc.want)
			case tc.want != 0 && (rj.Reason != tc.want || rj.Result != dimse.RejectedPermanent || rj.Source != dimse.SourceServiceUser):
				t.Fatalf("rejection %+v, want permanent/service-user/%v", rj, tc.want)
			}
		})
	}
}

func TestMayQueryRetrieve(t *testing.T) {
	def := config.Default()
	listed := config.Default()
	listed.DICOM.QueryRetrieveLoopback = false
	listed.DICOM.QueryRetrieveCallers = []config.Caller{{AE: "VIEWER", Hosts: []string{"10.0.0.0/8"}}}
	addr := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 4000} }
	cases := []struct {
		name string
		cfg  *config.Config
		ae   string
		from string
		want bool
	}{
		{"default: loopback may", def, "ANY", "127.0.0.1", true},
		{"default: IPv6 loopback may", def, "ANY", "::1", true},
		{"default: remote may not", def, "ANY", "10.1.2.3", false},
		{"listed AE from its range", listed, "VIEWER", "10.1.2.3", true},
		{"listed AE from elsewhere", listed, "VIEWER", "192.168.0.1", false},
		{"unlisted AE", listed, "OTHER", "10.1.2.3", false},
		{"loopback turned off", listed, "OTHER", "127.0.0.1", false},
	}
	for _, tc := range cases {
		n := &Node{Config: tc.cfg}
		got := n.MayQueryRetrieve(context.Background(), &dimse.AssociationInfo{CallingAE: tc.ae, RemoteAddr: addr(tc.from)})
		if got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
