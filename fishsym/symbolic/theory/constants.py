"""Method labels, exactness settings and the list of claims of the symbolic theorem suite.

Part of :mod:`fishsym.symbolic.theory` (see its docstring for the method).
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

SYMBOLIC = "symbolic-simplify"
SOS = "symbolic-sos-certificate"
POINTS = "exact-rational-points"

#: sympy.simplify is tried only below this operation count: beyond it, it can run for
#: minutes, and the exact rational-point test is the better fallback
SIMPLIFY_OPS_LIMIT = 400
#: number of random rational points of the fallback identity test and of the bound checks
N_POINTS = 3
#: enclosures are rounded outward to multiples of 2^-PRECISION_BITS (~9e-78): far below
#: any gap an inequality check has to resolve, and it keeps rational sizes bounded
PRECISION_BITS = 256
#: width to which real roots of characteristic polynomials are isolated
ROOT_EPS = Fraction(1, 10**24)
#: the finite input distribution of claim 6 (one pair (x, y)): weights of three inputs
INPUT_WEIGHTS = (sp.Rational(1, 6), sp.Rational(1, 3), sp.Rational(1, 2))
#: the input law of the (N_x, N_y) form of claim 6: weights of two inputs
INPUT_WEIGHTS_NXNY = (sp.Rational(1, 3), sp.Rational(2, 3))
#: numbers of inputs and of labels per input of the (N_x, N_y) form checked in claim 6
N_X, N_Y = 2, 2
CLAIMS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
