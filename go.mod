module github.com/scanwarden/scanwarden

go 1.26.8

require (
	github.com/coreos/go-iptables v0.8.0
	github.com/gopacket/gopacket v1.7.7
	github.com/sirupsen/logrus v1.9.3
	golang.org/x/sys v0.45.0
)

require golang.org/x/net v0.55.0 // indirect
