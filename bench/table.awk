# table.awk — pads tab-separated rows into aligned columns, with a rule
# under the header line.  Used by run.sh.

function dashes(k,    s) {
	s = ""
	while (k-- > 0)
		s = s "-"
	return s
}

{
	for (i = 1; i <= NF; i++) {
		cell[NR, i] = $i
		if (length($i) > w[i])
			w[i] = length($i)
	}
	nf[NR] = NF
	n = NR
}

END {
	for (r = 1; r <= n; r++) {
		line = ""
		for (i = 1; i <= nf[r]; i++) {
			if (i < nf[r])
				line = line sprintf("%-" w[i] "s  ", cell[r, i])
			else
				line = line cell[r, i]
		}
		print line
		if (r == 1) {
			line = ""
			for (i = 1; i <= nf[r]; i++)
				line = line dashes(w[i]) (i < nf[r] ? "  " : "")
			print line
		}
	}
}
