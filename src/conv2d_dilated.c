/* Dilated stride-1 convolutions as undilated ones on the image's phases.
 *
 * With dilations (dh, dw) and stride 1, output row dh*i + a reads input rows
 * dh*(i + ki) + a - pt: where pt is a multiple of dh, only rows of phase a of
 * x (rows a, a + dh, a + 2 dh, ...), as an undilated convolution of that
 * phase with padding pt / dh. The layer is then dh * dw undilated ones, one
 * per phase (a, b) of rows and columns, all with its kernel. Where every
 * phase has the same size (h, w, ho and wo multiples of the dilations), they
 * run as one convolution of a batch of dh * dw * n phase images, which the
 * Winograd methods take (the dilated layer, whose taps are not adjacent,
 * goes to the GEMM): x and dy are gathered into phase images, y and dx
 * scattered back, and the weight gradient sums over the phase images as over
 * any batch. The results do not depend on the thread count, as the
 * undilated passes' do not. */
#include <string.h>

#include "fc_internal.h"

/* The undilated layer of d's phase images (see fc_conv2d_dilated_applies). */
static fc_conv2d_desc phase_layer(const fc_conv2d_desc *d)
{
    fc_conv2d_desc p = *d;
    p.n = d->n * d->dh * d->dw;
    p.h = d->h / d->dh;
    p.w = d->w / d->dw;
    p.ho = d->ho / d->dh;
    p.wo = d->wo / d->dw;
    p.dh = p.dw = 1;
    p.pt = d->pt / d->dh;
    p.pl = d->pl / d->dw;
    p.pb = p.ho + d->kh - 1 - p.h - p.pt;
    p.pr = p.wo + d->kw - 1 - p.w - p.pl;
    return p;
}

int fc_conv2d_dilated_applies(const fc_conv2d_desc *d)
{
    if (d->sh != 1 || d->sw != 1 || (d->dh == 1 && d->dw == 1) || d->n == 0 || d->ho == 0
        || d->wo == 0 || d->pt % d->dh || d->pl % d->dw || d->h % d->dh || d->w % d->dw
        || d->ho % d->dh || d->wo % d->dw)
        return 0;
    const fc_conv2d_desc p = phase_layer(d);
    return p.pb >= 0 && p.pr >= 0 && fc_winograd_forward_method(&p) != FC_FORWARD_NO_WINOGRAD;
}

/* t (n, h, w, ch) into its phase images (dh dw n, h / dh, w / dw, ch),
 * phase (a, b) of image img at (a dw + b) n + img; with scatter, back. */
static void move_phases(const fc_conv2d_desc *d, ptrdiff_t h, ptrdiff_t w, ptrdiff_t ch,
                        int scatter, const float *src, float *dst, int n_threads)
{
    const ptrdiff_t ph = h / d->dh, pw = w / d->dw, rows = d->dh * d->dw * d->n * ph;
    const size_t bytes = (size_t)ch * sizeof(float);
    n_threads = fc_threads_for((double)(d->n * h * w * ch), FC_GRAIN_ELEMENTS, n_threads);
    fc_team team = FC_TEAM_INIT;
    FC_OMP(omp parallel num_threads(n_threads) if (n_threads > 1))
    {
        FC_OMP(omp for schedule(static) nowait)
        for (ptrdiff_t r = 0; r < rows; ++r) { /* a row of a phase image */
            const ptrdiff_t u = r % ph, img = r / ph % d->n, phase = r / ph / d->n;
            const ptrdiff_t a = phase / d->dw, b = phase % d->dw;
            const ptrdiff_t pixel = (img * h + d->dh * u + a) * w + b; /* its first in t */
            for (ptrdiff_t v = 0; v < pw; ++v) {
                const ptrdiff_t in_t = (pixel + d->dw * v) * ch, in_phase = (r * pw + v) * ch;
                if (scatter)
                    memcpy(dst + in_t, src + in_phase, bytes);
                else
                    memcpy(dst + in_phase, src + in_t, bytes);
            }
        }
        fc_team_leave(&team);
    }
}

int fc_conv2d_dilated_forward_f32(const fc_conv2d_desc *d, const float *x, const float *w,
                                  const float *b, float *y, int n_threads)
{
    const fc_conv2d_desc p = phase_layer(d);
    float *xp = fc_aligned_alloc((size_t)(d->n * d->h * d->w * d->c) * sizeof(float));
    float *yp = fc_aligned_alloc((size_t)(d->n * d->ho * d->wo * d->f) * sizeof(float));
    int status = xp && yp ? FC_OK : FC_ERR_NOMEM;
    if (status == FC_OK) {
        move_phases(d, d->h, d->w, d->c, 0, x, xp, n_threads);
        status = fc_conv2d_forward_f32(&p, xp, w, b, yp, n_threads);
    }
    if (status == FC_OK)
        move_phases(d, d->ho, d->wo, d->f, 1, yp, y, n_threads);
    fc_aligned_free(xp);
    fc_aligned_free(yp);
    return status;
}

int fc_conv2d_dilated_backward_f32(const fc_conv2d_desc *d, const float *x, const float *dy,
                                   const float *w, float *dx, float *dw, float *db,
                                   int n_threads)
{
    const fc_conv2d_desc p = phase_layer(d);
    const ptrdiff_t x_floats = d->n * d->h * d->w * d->c;
    float *xp = dw ? fc_aligned_alloc((size_t)x_floats * sizeof(float)) : NULL;
    float *dyp = fc_aligned_alloc((size_t)(d->n * d->ho * d->wo * d->f) * sizeof(float));
    float *dxp = dx ? fc_aligned_alloc((size_t)x_floats * sizeof(float)) : NULL;
    int status = dyp && (xp || !dw) && (dxp || !dx) ? FC_OK : FC_ERR_NOMEM;
    if (status == FC_OK) {
        if (dw)
            move_phases(d, d->h, d->w, d->c, 0, x, xp, n_threads);
        move_phases(d, d->ho, d->wo, d->f, 0, dy, dyp, n_threads);
        if (dx && dw) /* with d->relu, xp is the mask of dx's phases */
            status = fc_conv2d_backward_f32(&p, xp, dyp, w, dxp, dw, db, n_threads);
        else if (dx)
            status = fc_conv2d_backward_input_f32(&p, dyp, w, dxp, n_threads);
        else
            status = fc_conv2d_backward_weight_f32(&p, xp, dyp, dw, db, n_threads);
    }
    if (status == FC_OK && dx)
        move_phases(d, d->h, d->w, d->c, 1, dxp, dx, n_threads);
    fc_aligned_free(xp);
    fc_aligned_free(dyp);
    fc_aligned_free(dxp);
    return status;
}
