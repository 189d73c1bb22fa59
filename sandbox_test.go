package main

import (
	"testing"

	"github.com/connectlumin/app/lumin/luminfake"
)

func TestParseSandboxFaults(t *testing.T) {
	tests := []struct {
		in      string
		want    luminfake.Faults
		wantErr bool
	}{
		{in: "api_status=429,retry_after=7,times=1,path=/v1/signature_request",
			want: luminfake.Faults{APIStatus: 429, RetryAfter: 7, APIStatusTimes: 1, APIPath: "/v1/signature_request"}},
		{in: " api_status=503 ", want: luminfake.Faults{APIStatus: 503}},
		{in: "api_status=abc", wantErr: true},
		{in: "latency=5s", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSandboxFaults(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err: got %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
