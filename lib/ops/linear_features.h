/* Transitional: the names lib/ops/rpe.c used for the feature maps before they moved to the
 * building block lib/blocks/features.h (where new code should look). Remove this header once
 * rpe.c bakes a clattn__features into its plan (clattn__features_bake / _enqueue). */
#ifndef CLATTN_LINEAR_FEATURES_H
#define CLATTN_LINEAR_FEATURES_H

#include "blocks/features.h"

#define CLATTN__LIN_MAX_D CLATTN__FEATURES_MAX_D
#define CLATTN__LIN_MAX_M CLATTN__FEATURES_MAX_M
#define clattn__linear_feature_dim clattn__features_count
#define clattn__linear_feature_stride clattn__features_stride
#define clattn__linear_projection clattn__features_projection_once
#define clattn__linear_features clattn__features_enqueue_once

#endif
