import numpy as np

from omnireid.preprocessing import l2_normalize


def test_l2_normalize_scales_each_row_to_unit_length_and_keeps_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]], dtype=np.float32)
    out = l2_normalize(x)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]], rtol=1e-6)
    assert out.dtype == np.float32 and x[0, 0] == 3.0  # a new array, the input untouched
