// Preference losses on per-sequence log-probability sums (see PreferenceParams in
// core/ops.h for the formulas), computed per pair in double, with their gradients.
#include <algorithm>
#include <cmath>
#include "ops_common.h"

namespace itool {

namespace {
// log σ(z), stable for large |z|
inline double log_sigmoid(double z) { return z >= 0 ? -std::log1p(std::exp(-z)) : z - std::log1p(std::exp(z)); }
inline double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z)); }
// log(p/(1-p)) for log p = m (m < 0); +inf at m = 0
inline double log_odds(double m) { return m - std::log(-std::expm1(m)); }
// d log_odds / dm = 1/(1-p)
inline double dlog_odds(double m) { return -1.0 / std::expm1(m); }
}  // namespace

void CpuBackend::preference_loss(const PreferenceParams& p) {
  const bool lens = p.kind == PrefLoss::SIMPO || p.kind == PrefLoss::ORPO;
  const bool refs = p.kind == PrefLoss::DPO || p.kind == PrefLoss::IPO;
  if (lens && (!p.chosen_len || !p.rejected_len)) throw_error("cpu preference_loss: SimPO/ORPO need chosen_len and rejected_len");
  if (refs && (!p.ref_chosen || !p.ref_rejected)) throw_error("cpu preference_loss: DPO/IPO need ref_chosen and ref_rejected");
  const double beta = p.beta, gamma = p.gamma, ls = p.label_smoothing, lambda = p.lambda;
  for (int64_t i = 0; i < p.P; ++i) {
    const double c = p.chosen[i], r = p.rejected[i];
    double loss = 0, dc = 0, dr = 0, cr = 0, rr = 0;
    switch (p.kind) {
      case PrefLoss::DPO: {
        const double hc = c - p.ref_chosen[i], hr = r - p.ref_rejected[i];
        const double z = beta * (hc - hr);
        loss = -(1 - ls) * log_sigmoid(z) - ls * log_sigmoid(-z);
        const double dz = -(1 - ls) * sigmoid(-z) + ls * sigmoid(z);
        dc = beta * dz;
        dr = -beta * dz;
        cr = beta * hc;
        rr = beta * hr;
        break;
      }
      case PrefLoss::IPO: {
        const double hc = c - p.ref_chosen[i], hr = r - p.ref_rejected[i];
        const double h = hc - hr - 1.0 / (2.0 * beta);
        loss = h * h;
        dc = 2 * h;
        dr = -2 * h;
        cr = beta * hc;
        rr = beta * hr;
        break;
      }
      case PrefLoss::SIMPO: {
        const double lc = p.chosen_len[i], lr = p.rejected_len[i];
        if (!(lc > 0) || !(lr > 0)) throw_range("cpu preference_loss: lengths must be > 0");
        const double z = beta * (c / lc - r / lr) - gamma;
        loss = -log_sigmoid(z);
        const double dz = -sigmoid(-z);
        dc = dz * beta / lc;
        dr = -dz * beta / lr;
        cr = beta * c / lc;
        rr = beta * r / lr;
        break;
      }
      case PrefLoss::ORPO: {
        const double lc = p.chosen_len[i], lr = p.rejected_len[i];
        if (!(lc > 0) || !(lr > 0)) throw_range("cpu preference_loss: lengths must be > 0");
        // log-odds are infinite at probability 1: averages are clamped to at most -1e-6
        const double mc = std::min(c / lc, -1e-6), mr = std::min(r / lr, -1e-6);
        const double oc = log_odds(mc), orr = log_odds(mr);
        const double z = oc - orr;
        loss = -mc - lambda * log_sigmoid(z);
        const double dz = -lambda * sigmoid(-z);
        dc = c / lc < -1e-6 ? (-1.0 + dz * dlog_odds(mc)) / lc : 0.0;  // no gradient through the clamp
        dr = r / lr < -1e-6 ? (-dz * dlog_odds(mr)) / lr : 0.0;
        cr = oc;
        rr = orr;
        break;
      }
      default: throw_range("cpu preference_loss: unknown loss kind");
    }
    p.loss[i] = static_cast<float>(loss);
    if (p.d_chosen) p.d_chosen[i] = static_cast<float>(dc);
    if (p.d_rejected) p.d_rejected[i] = static_cast<float>(dr);
    if (p.chosen_reward) p.chosen_reward[i] = static_cast<float>(cr);
    if (p.rejected_reward) p.rejected_reward[i] = static_cast<float>(rr);
  }
}

}  // namespace itool
