/*
 * pcaploop FILE: libpcap's own read loop, the floor of any pcap reader.
 * scripts/bench.sh compares `scanwarden replay` with it: pcap_open_offline,
 * then pcap_next_ex over every packet, reading one byte of each (its last)
 * so that the loop cannot be optimised away, then the count.
 *
 *   cc -O2 -o pcaploop pcaploop.c -lpcap
 */
#include <pcap/pcap.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *data;
	unsigned long n = 0, sum = 0;
	pcap_t *p;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: pcaploop FILE\n");
		return 2;
	}
	if ((p = pcap_open_offline(argv[1], errbuf)) == NULL) {
		fprintf(stderr, "pcaploop: %s\n", errbuf);
		return 1;
	}
	while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
		n++;
		if (h->caplen > 0)
			sum += data[h->caplen - 1];
	}
	if (rc == PCAP_ERROR) {
		fprintf(stderr, "pcaploop: %s: %s\n", argv[1], pcap_geterr(p));
		return 1;
	}
	pcap_close(p);
	printf("%lu packets (sum of last bytes %lu)\n", n, sum);
	return 0;
}
