# Prototype measured for docs/speed/variable_projection.md (numpy; run with a virtualenv that has
# numpy): python3 variable_projection.py DATASET BIN. DATASET names a folder under /tmp/ca/rob
# holding espm-simulated data (counts.npy, 128x128x1980: `scripts/robustness.py --keep DIR` writes
# them), and /tmp/s9/o_cal-DATASET/G.npy is the G of `edxs decompose` on it; edit the paths.

import numpy as np, time, sys
np.random.seed(0)
ds = sys.argv[1] if len(sys.argv) > 1 else 'espm-18-42'
b = int(sys.argv[2]) if len(sys.argv) > 2 else 4
Y = np.load(f'/tmp/ca/rob/{ds}/counts.npy').astype(float)
print(Y.shape)
if Y.ndim == 3:
    r, c, L = Y.shape
else:
    raise SystemExit('shape')
Yb = Y.reshape(r//b, b, c//b, b, L).sum(axis=(1,3)).reshape(-1, L).T  # L x P
G = np.load(f'/tmp/s9/o_cal-{ds}/G.npy')  # L x M
L, M = G.shape; P = Yb.shape[1]; K = 3
E = 12  # element rows
print('binned', Yb.shape, 'nnz', (Yb>0).sum(), 'counts/px', Yb.sum(0).mean())
eps = 1e-12
def F(W, H):
    X = G @ W @ H
    m = Yb > 0
    return X.sum() - (Yb[m] * np.log(X[m])).sum()
def proj_W(W):
    W = W.copy()
    for k in range(K):
        W[:E, k] = proj_simplex(W[:E, k])
    W[E:] = np.maximum(W[E:], 0)
    return W
def proj_simplex(v):
    u = np.sort(v)[::-1]; css = np.cumsum(u); rho = np.nonzero(u * np.arange(1, len(v)+1) > (css - 1))[0][-1]
    th = (css[rho] - 1) / (rho + 1.0); return np.maximum(v - th, 0)
# start: a deterministic-ish random W on the simplex, brems from mean
W0 = np.random.rand(M, K); W0 = proj_W(W0); W0[E:] = 1e-3 * Yb.sum() / P / max(G[:, E:].sum(), 1)
D0 = G @ W0
H0 = np.maximum(np.linalg.lstsq(D0, Yb, rcond=None)[0], 1e-3)

def solve_H(D, H, iters=30, tol=1e-10):
    # batched projected Newton per pixel, K=3; returns H and passes used
    passes = 0
    for it in range(iters):
        X = D @ H; passes += 1
        R = Yb / X
        g = D.sum(0)[:, None] - D.T @ R   # K x P
        Wt = Yb / X**2
        # Hessian per pixel: D^T diag(w) D
        Hs = np.einsum('lk,lp,lj->pkj', D, Wt, D)
        free = ~((H <= eps) & (g > 0))
        Hs_f = Hs + np.eye(K)[None] * 1e-12
        gf = np.where(free, g, 0).T
        for i in range(K):
            Hs_f[~free[i], i, :] = 0; Hs_f[~free[i], :, i] = 0; Hs_f[~free[i], i, i] = 1
        d = -np.linalg.solve(Hs_f, gf[..., None])[..., 0].T
        # per-pixel backtracking
        t = np.ones(P)
        f0 = (X.sum(0) - (np.where(Yb > 0, Yb * np.log(np.maximum(X, 1e-300)), 0)).sum(0))
        Hn = H.copy()
        for _ in range(20):
            Hn = np.maximum(H + t * d, eps)
            Xn = D @ Hn
            fn = Xn.sum(0) - (np.where(Yb > 0, Yb * np.log(np.maximum(Xn, 1e-300)), 0)).sum(0)
            ok = fn <= f0 + 1e-4 * (g * (Hn - H)).sum(0)
            if ok.all(): break
            t = np.where(ok, t, t * 0.5)
        passes += 1
        dec = np.abs(f0 - fn).max()
        H = Hn
        if dec < tol * np.abs(f0).max(): break
    return H, passes

def mu(W, H, n):
    sG = G.sum(0)
    hist = []
    for it in range(n):
        D = G @ W
        X = D @ H
        H = H * (D.T @ (Yb / X)) / D.sum(0)[:, None]
        X = D @ H
        num = G.T @ (Yb / X) @ H.T
        den = np.outer(sG, H.sum(1))
        W = W * num / den
        # rescale element part to the simplex, H compensates
        s = W[:E].sum(0)
        W[:E] /= s; H *= s[:, None]; W[E:] /= 1  # brems rows scale with H: keep W[E:] * s? no: D col = G[:, :E] W_E + G[:, E:] W_B
        W[E:] /= s
        hist.append(F(W, H))
    return W, H, hist

def vp(W, H, maxit=300):
    H, ps = solve_H(G @ W, H)
    passes = ps
    f = F(W, H)
    X = G @ W @ H
    grad = G.T @ (1 - Yb / X) @ H.T; passes += 1
    alpha = 1.0 / max(np.abs(grad).max(), 1e-30) * 1e-3
    fs = [f]; hist = []
    for it in range(maxit):
        Wn = proj_W(W - alpha * grad)
        dW = Wn - W
        # nonmonotone Armijo along dW
        fref = max(fs[-10:])
        t = 1.0
        while True:
            Wt = W + t * dW
            Ht, ps = solve_H(G @ Wt, H); passes += ps
            ft = F(Wt, Ht)
            if ft <= fref + 1e-4 * t * (grad * dW).sum() or t < 1e-8:
                break
            t *= 0.5
        Xt = G @ Wt @ Ht
        gt = G.T @ (1 - Yb / Xt) @ Ht.T; passes += 1
        s = (Wt - W).ravel(); yv = (gt - grad).ravel()
        sy = s @ yv
        alpha = (s @ s) / sy if sy > 0 else 1e3 * alpha
        W, H, grad, f = Wt, Ht, gt, ft
        fs.append(f); hist.append((passes, f))
        pg = np.abs(proj_W(W - grad) - W).max()
        if it % 10 == 0: print(f'  vp it {it} passes {passes} f {f:.10f} pg {pg:.2e}', flush=True)
        if pg < 1e-9: break
    return W, H, hist

t0 = time.time()
Wm, Hm, hm = mu(W0.copy(), H0.copy(), 20000)
print('MU', time.time() - t0, 's')
for n in [100, 300, 1000, 2000, 5000, 10000, 20000]:
    print(f'  MU it {n} f {hm[n-1]:.10f}')
t0 = time.time()
Wv, Hv, hv = vp(W0.copy(), H0.copy())
print('VP', time.time() - t0, 's')
print('final MU', hm[-1], 'VP', hv[-1])
np.save('/tmp/vp/Wm.npy', Wm); np.save('/tmp/vp/Wv.npy', Wv)
Dm = G @ Wm; Dv = G @ Wv
for k in range(K):
    c = [np.degrees(np.arccos(np.clip(Dm[:, k] @ Dv[:, j] / np.linalg.norm(Dm[:, k]) / np.linalg.norm(Dv[:, j]), -1, 1))) for j in range(K)]
    print('MU comp', k, 'angles to VP comps', np.round(c, 3))
