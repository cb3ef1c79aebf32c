"""nflc analyze: the paper's signs on nfl_h3, provenance, JSON schema, non-exact spaces, bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import nflc
from nflc.analysis.analyze import analyze, curvature, to_json_dict
from nflc.analysis.exact import exact_support, normalize_inputs
from nflc.cli import app

ROOT = Path(__file__).resolve().parents[2]
H3 = ROOT / "specs" / "nfl_h3.nfl"
NB201 = ROOT / "specs" / "nb201.nfl"


@pytest.fixture(scope="module")
def h3():
    return nflc.load(H3)


@pytest.fixture(scope="module")
def h3_mnist(h3):
    return analyze(h3, data="mnist5k", samples=256, seed=0)


def test_paper_signs_on_mnist5k(h3_mnist):
    """Convergence rises with P and falls with mean depth (the paper's Fig. 4: lambda_min
    NNGP R(P) = 0.79, R(d) = -0.52); expressivity, the total path depth, rises with depth
    (curvature R(d) = 0.47) and, unlike the paper's 1/||J||, with the number of paths."""
    kt = h3_mnist.report.kendall
    assert kt["convergence"]["paths"].tau > 0.5
    assert kt["convergence"]["mean_depth"].tau < 0
    assert kt["expressivity"]["mean_depth"].tau > 0.5
    assert kt["expressivity"]["paths"].tau > 0


def test_winners_and_verdict(h3_mnist):
    rep = h3_mnist.report
    # the most total depth: every edge linear, paths of depth 1, 2, 2, 3 (sum 8)
    assert rep.winners["expressivity"] == ["|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|"]
    assert not rep.one_wins_all and "no free lunch" in rep.verdict
    # 67 of the 729 cells have no input-output path; they are left out of the report
    assert len(rep.left_out) == sum(1 for a in h3_mnist.architectures if a.topology["paths"] == 0) == 67
    # the Pareto front is non-dominated and contains every winner
    front = set(rep.pareto_front)
    for ids in rep.winners.values():
        assert set(ids) & front


def test_every_architecture_is_exact_with_provenance(h3_mnist):
    assert h3_mnist.exact_kernels and h3_mnist.exact_note is None
    a = h3_mnist.architectures[100]
    assert a.kernels["source"] == "exact"
    assert a.scores["convergence"].source == "exact"
    assert a.scores["expressivity"].source == "topology"
    assert "Thm 4.5" in a.scores["generalization"].formula


def test_expressivity_is_the_total_path_depth_by_hand(h3, h3_mnist):
    by_id = {a.id: a for a in h3_mnist.architectures}
    cases = {"|linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~2|": 3,  # the chain: one path of depth 3
             "|linear~0|+|zero~0|zero~1|+|skip~0|linear~1|zero~2|": 2,  # paths 0-1-3 (2) and 0-3 (0)
             "|linear~0|+|linear~0|linear~1|+|linear~0|linear~1|linear~2|": 8,  # 1 + 2 + 2 + 3
             "|skip~0|+|skip~0|skip~1|+|skip~0|skip~1|skip~2|": 0,  # four skip-only paths
             "|zero~0|+|zero~0|zero~1|+|zero~0|zero~1|zero~2|": 0}  # no path
    for arch_id, total in cases.items():
        a = by_id[h3.architecture(arch_id).id]
        assert a.scores["expressivity"].value == total
        # the paper's closed form stays available as an indicator
        assert a.indicators["curvature_thm41"] == pytest.approx(curvature(h3.architecture(arch_id)))


def test_curvature_closed_form(h3):
    """kappa = 1 / sum_p exp(-5 d_p / (8 m)) by hand for the chain (P = 1, d = 3) and a P = 2 cell."""
    chain = h3.architecture("|linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~2|")
    assert curvature(chain) == pytest.approx(1 / math.exp(-15 / 2048))
    two = h3.architecture("|linear~0|+|zero~0|zero~1|+|skip~0|linear~1|zero~2|")  # paths 0-1-3 (d=2), 0-3 (d=0)
    assert two.topology().paths == 2
    assert curvature(two) == pytest.approx(1 / (math.exp(-10 / 2048) + 1))


def test_convergence_score_is_the_pair_bound_of_the_exact_nngp(h3, h3_mnist):
    from nflc.analysis.analyze import analysis_inputs

    x, _, _ = analysis_inputs(h3, "mnist5k", 256, 0)
    a = h3.architecture(600)
    k = nflc.kernels(a, normalize_inputs(x)).nngp
    i, j = np.triu_indices(len(k), 1)
    bound = np.min((np.diag(k)[i] + np.diag(k)[j]) / 2 - k[i, j])
    got = next(r for r in h3_mnist.architectures if r.index == 600)
    assert got.scores["convergence"].value == pytest.approx(bound, rel=1e-12)
    # the bound is an upper bound on lambda_min (2 x 2 principal submatrices)
    assert np.linalg.eigvalsh(k)[0] <= bound + 1e-9


def test_kernels_api_on_spec_architectures_by_closed_forms(h3, ref):
    """nflc.kernels on architectures of specs/nfl_h3.nfl and raw, correlated 784-d inputs
    (images accepted in any shape with 784 values), against closed forms: the all-linear
    chain is a 4-ReLU-layer MLP (arc-cosine recursions); the all-skip cell is X3 = 4 X0, so
    K = 16 k1(q_in) and Theta = K + 16 k0(q_in) q_in."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 784)) + 0.5 * rng.normal(size=784)
    x *= np.linspace(0.5, 2.0, 7)[:, None]
    chain = h3.architecture("|linear~0|+|zero~0|linear~1|+|zero~0|zero~1|linear~2|")
    got = nflc.kernels(chain, x.reshape(7, 28, 28))
    nngp, ntk = ref.chain(x, 4)
    np.testing.assert_allclose(got.nngp, nngp, rtol=1e-12)
    np.testing.assert_allclose(got.ntk, ntk, rtol=1e-12)
    skip = h3.architecture("|skip~0|+|skip~0|skip~1|+|skip~0|skip~1|skip~2|")
    got = nflc.kernels(skip, x)
    q_in = ref.input_gram(x)
    np.testing.assert_allclose(got.nngp, 16 * ref.k1_gram(q_in), rtol=1e-12)
    np.testing.assert_allclose(got.ntk, 16 * ref.k1_gram(q_in) + 16 * ref.k0_gram(q_in) * q_in, rtol=1e-12)
    with pytest.raises(ValueError, match="784"):
        nflc.kernels(chain, x[:, :10])


def test_normalize_inputs_by_hand():
    """Every input flattened and rescaled to |x|^2 = d (here d = 2); a zero input stays zero."""
    x = np.array([[[3.0, 4.0]], [[0.0, 0.0]], [[-1.0, 0.0]]])  # (3, 1, 2)
    got = normalize_inputs(x)
    r2 = math.sqrt(2)
    np.testing.assert_allclose(got, [[3 * r2 / 5, 4 * r2 / 5], [0.0, 0.0], [-r2, 0.0]], rtol=1e-15)


def test_exact_support_says_why_not(h3):
    text = H3.read_text()
    ident = "|linear~0|+|zero~0|skip~1|+|zero~0|linear~1|skip~2|"
    assert exact_support(h3.architecture(ident)) is None
    assert "has a bias" in exact_support(h3.with_options(bias=True).architecture(ident))
    assert exact_support(h3.with_options(init="xavier_normal").architecture(ident)) == (
        "init is xavier_normal, the exact kernels assume he_normal")
    two = nflc.loads(text.replace(">> cell >>", ">> cell x2 independent >>"))
    assert "linear >> relu >> cell >> cell >> linear" in exact_support(two.architecture(0))
    other = nflc.loads(text.replace("linear >> relu as linear", "linear >> relu as linear | relu"))
    assert exact_support(other.architecture("|relu~0|+|zero~0|zero~1|+|zero~0|zero~1|linear~2|")).startswith(
        "edge 0 -> 1 is 'relu'")
    with pytest.raises(ValueError, match="has a bias"):
        nflc.kernels(h3.with_options(bias=True).architecture(ident), np.ones((2, 784)))


def test_conv_space_is_measured_not_exact():
    sp = nflc.load(NB201, space="nb201")
    archs = sp.sample(2, seed=3)
    assert exact_support(archs[0]) is not None
    res = analyze(sp, data="none", samples=8, seed=0, archs=archs)
    assert not res.exact_kernels and "do not apply" in res.exact_note
    for a in res.architectures:
        assert a.kernels["source"] == "finite-width"
        assert a.scores["convergence"].source == "finite-width"
        assert math.isfinite(a.kernels["nngp"]["lambda_min"])


def test_json_schema_and_csv(tmp_path):
    out = tmp_path / "a.json"
    csv = tmp_path / "a.csv"
    res = CliRunner().invoke(app, ["analyze", str(H3), "--data", "none", "--samples", "16", "--archs", "sample:20",
                                   "--json", str(out), "--csv", str(csv), "--top", "2"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert set(doc) >= {"space", "data", "architectures", "report", "provenance"}
    a = doc["architectures"][0]
    assert set(a) >= {"id", "params", "flops", "topology", "kernels", "scores"}
    assert set(a["topology"]) >= {"paths", "depths", "mean_depth"}
    assert set(a["scores"]) == {"expressivity", "convergence", "generalization"}
    assert doc["data"]["name"] == "none" and not doc["data"]["labels"]
    assert len(csv.read_text().splitlines()) == 21


@pytest.mark.parametrize("args, message", [
    (["--samples", "6000"], "more than dataset"),
    (["--data", "digits"], "784"),
    (["--data", "mnist"], "unknown dataset"),
    (["--archs", "sample:x"], "sample:K"),
    (["--measure", "sometimes"], "measure"),
])
def test_bad_input_is_a_clear_error(args, message):
    res = CliRunner().invoke(app, ["analyze", str(H3), *args])
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


def test_data_free_mode_is_deterministic(h3):
    archs = [h3.architecture(i) for i in (5, 77, 700)]
    a = analyze(h3, data="none", samples=12, seed=1, archs=archs)
    b = analyze(h3, data="none", samples=12, seed=1, archs=archs)
    assert [r.scores for r in a.architectures] == [r.scores for r in b.architectures]
    assert to_json_dict(a)["architectures"][0]["scores"] == to_json_dict(b)["architectures"][0]["scores"]


def test_the_report_names_networks_whose_paths_carry_no_parameterized_layer(h3, h3_mnist):
    """Skip-only cells tie as generalization winners (the bound's leading term is 0): the
    report says why, with their number counted from the cells' own paths."""
    skip_only = sum(1 for a in h3_mnist.architectures if a.topology["paths"] > 0 and all(d == 0 for d in a.topology["depths"]))
    assert skip_only > 0
    note = next(n for n in h3_mnist.report.notes if "no parameterized layer" in n)
    assert note.startswith(f"{skip_only} architecture(s)")
    assert set(h3_mnist.report.winners["generalization"]) <= {
        a.id for a in h3_mnist.architectures if a.topology["paths"] > 0 and a.topology["sum_depth"] == 0}


def test_a_verdict_over_few_architectures_carries_a_warning(h3):
    from nflc.analysis.report import MIN_VERDICT_N, caveats

    few = analyze(h3, data="mnist5k", samples=16, seed=0, archs=[h3.architecture(i) for i in (100, 200, 300, 400)])
    assert any("only 4 architecture(s)" in n for n in few.report.notes)
    assert not any("too few" in n for n in caveats(MIN_VERDICT_N))
    # tau's spread over n = 4 points: 1.96 sqrt(2 (2n + 5) / (9 n (n - 1))) = 1.96 sqrt(26 / 108)
    assert "+-0.96 wide" in caveats(4)[0]
