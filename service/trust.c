#include "trust.h"

#include <math.h>

double stm_trust_decay(double trust, int64_t renewed_ns, int64_t now_ns,
                       int64_t half_life_ns) {
  if (half_life_ns <= 0 || now_ns <= renewed_ns)
    return trust;
  double halves = (double)(now_ns - renewed_ns) / (double)half_life_ns;
  return STM_TRUST_NEUTRAL + (trust - STM_TRUST_NEUTRAL) * exp2(-halves);
}
