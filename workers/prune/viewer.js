// The circuit page's script (inlined by circuit_page.py): graph, node panel, ablation view.
// Reads everything from the JSON in #circuit-data; no network, no libraries.
(() => {
  'use strict';
  const D = JSON.parse(document.getElementById('circuit-data').textContent);
  const G = D.graph;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const WEIGHTED = new Set(['read_q', 'read_k', 'read_v', 'v_write', 'read_neuron', 'neuron_write', 'write_unembed']);
  const KIND_TEXT = {
    read_q: 'reads into q', read_k: 'reads into k', read_v: 'reads into v', v_write: 'v writes',
    read_neuron: 'reads into neuron', neuron_write: 'neuron writes', write_unembed: 'unembeds',
    residual: 'residual stream', embed_read: 'embedding', qk_pair: 'q·k pair',
  };
  const PART_TEXT = {
    'attn.act_in': 'attention input (residual channel read)', 'attn.q': 'attention query channel',
    'attn.k': 'attention key channel', 'attn.v': 'attention value channel',
    'attn.resid_delta': 'attention output (residual channel written)',
    'mlp.act_in': 'MLP input (residual channel read)', 'mlp.post_act': 'MLP neuron',
    'mlp.resid_delta': 'MLP output (residual channel written)',
  };
  const acts = D.activations || { nodes: {}, task_prompts: [], tokens: {} };
  const ablation = D.node_ablation || null;
  const kept = G.nodes.filter(n => n.location !== 'embed' && n.location !== 'unembed');
  const small = kept.length <= 40;

  // -------------------------------------------------------------- numbers and elements
  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
    return String(Number(v.toPrecision(4)));
  }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') node.className = v; else if (k === 'text') node.textContent = v; else node.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }
  const tokenText = id => {
    const t = acts.tokens[String(id)] ?? (D.token_text || {})[String(id)] ?? `#${id}`;
    return t.replace(/\n/g, '↵').replace(/\t/g, '⇥');
  };
  const nodeLink = i => {
    const a = el('a', { class: 'node', 'data-node': G.nodes[i].id, text: G.nodes[i].name });
    a.addEventListener('click', () => select(i, true));
    return a;
  };

  // -------------------------------------------------------------------- headline
  const L = D.losses || {};
  const headline = document.getElementById('headline');
  headline.append(
    el('span', { text: `${D.counts.nodes} nodes, ${D.counts.edges} edges · circuit loss ` }),
    el('b', { class: 'num', id: 'headline-circuit-loss', text: fmt(L.circuit) }),
    el('span', { text: ` (target ${fmt(L.target)}, ${D.reached_target ? 'reached' : 'not reached'}) · full model ` }),
    el('b', { class: 'num', id: 'headline-full-loss', text: fmt(L.full_model) }),
    el('span', { text: ` · test split, ${(D.evaluation || {}).test_pairs ?? '?'} pairs` }),
  );

  // ---------------------------------------------------------------------- layout
  const columnX = {}, pos = [];
  const colGap = small ? 150 : 105, top = 90;
  const byColumn = G.columns.map(c => G.nodes.map((n, i) => [n, i]).filter(([n]) => n.location === c)
    .sort((a, b) => a[0].index - b[0].index).map(([, i]) => i));
  const maxRows = Math.max(1, ...byColumn.map(c => c.length));
  const rowGap = small ? 54 : Math.max(11, Math.min(22, 900 / maxRows));
  const radius = small ? 10 : 4.5;
  const height = top + maxRows * rowGap;
  G.columns.forEach((c, ci) => {
    columnX[c] = 80 + ci * colGap;
    const offset = (maxRows - byColumn[ci].length) * rowGap / 2;
    byColumn[ci].forEach((i, r) => { pos[i] = [columnX[c], top + offset + r * rowGap]; });
  });

  const canvas = document.getElementById('canvas');
  const viewport = document.getElementById('viewport');
  const layers = new Map();
  G.columns.forEach(c => {
    const layer = c.split('.')[0];
    if (!/^\d+$/.test(layer)) return;
    const [lo, hi] = layers.get(layer) || [Infinity, -Infinity];
    layers.set(layer, [Math.min(lo, columnX[c]), Math.max(hi, columnX[c])]);
  });
  [...layers.entries()].forEach(([layer, [lo, hi]], k) => {
    if (k % 2 === 0) {
      viewport.append(svg('rect', { class: 'layer-band', x: lo - colGap / 2, y: 8, width: hi - lo + colGap, height: height }));
    }
    const label = svg('text', { class: 'layer-label', x: (lo + hi) / 2, y: 24, 'text-anchor': 'middle' });
    label.textContent = `layer ${layer}`;
    viewport.append(label);
  });
  G.columns.forEach((c, ci) => {
    const text = svg('text', { class: 'column', x: columnX[c], y: 44 + 16 * (ci % 2), 'text-anchor': 'middle' });
    text.textContent = c.replace(/^\d+\./, '');
    viewport.append(text);
  });

  // ----------------------------------------------------------------------- links
  const weights = G.links.filter(l => WEIGHTED.has(G.kinds[l[2]]) && l[3] !== null).map(l => Math.abs(l[3]));
  const maxW = Math.max(1e-12, ...weights);
  const minW = Math.max(maxW * 1e-4, Math.min(...weights.filter(w => w > 0), maxW));
  const linkGroup = svg('g', {});
  viewport.append(linkGroup);
  const incident = G.nodes.map(() => []);
  const links = G.links.map(([s, t, k, w], li) => {
    const kind = G.kinds[k];
    const [x1, y1] = pos[s], [x2, y2] = pos[t];
    const dx = Math.max(30, (x2 - x1) / 2);
    const d = `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
    const attrs = { d, class: 'link' };
    const weighted = WEIGHTED.has(kind) && w !== null;
    if (weighted) {
      attrs.stroke = w >= 0 ? '#1f5fbf' : '#c0392b';
      attrs['stroke-width'] = ((small ? 1 : 0.5) + (small ? 6 : 3) * Math.abs(w) / maxW).toFixed(2);
      attrs['stroke-opacity'] = (0.45 + 0.55 * Math.abs(w) / maxW).toFixed(2);
    } else if (kind === 'qk_pair') {
      Object.assign(attrs, { stroke: '#8e44ad', 'stroke-dasharray': '2,3', 'stroke-width': 1.5, 'stroke-opacity': 0.7 });
    } else {
      Object.assign(attrs, { stroke: '#999', 'stroke-dasharray': '5,4', 'stroke-width': 1, 'stroke-opacity': 0.6 });
    }
    const path = svg('path', attrs);
    const title = svg('title', {});
    title.textContent = `${KIND_TEXT[kind] || kind}: ${G.nodes[s].name} → ${G.nodes[t].name}` + (w !== null ? `  w=${fmt(w)}` : '');
    path.append(title);
    linkGroup.append(path);
    incident[s].push(li); incident[t].push(li);
    return { s, t, kind, w, weighted, path };
  });

  // ----------------------------------------------------------------------- nodes
  const nodeGroup = svg('g', {});
  viewport.append(nodeGroup);
  const nodeEls = G.nodes.map((n, i) => {
    const [x, y] = pos[i];
    const g = svg('g', { class: 'node', 'data-node': n.id, transform: `translate(${x},${y})` });
    const colour = n.location === 'embed' || n.location === 'unembed' ? '#2c3e50'
      : n.location.includes('.attn.') ? '#e67e22' : '#16a085';
    g.append(svg('circle', { r: radius, fill: colour }));
    const label = svg('text', { x: radius + 3, y: 3.5 });
    label.textContent = n.location === 'unembed' ? tokenText(n.index) : small ? `[${n.index}]` : String(n.index);
    g.append(label);
    const title = svg('title', {});
    title.textContent = n.name + (n.ablation_value !== undefined ? `\nablated to ${fmt(n.ablation_value)}` : '');
    g.append(title);
    g.addEventListener('click', e => { e.stopPropagation(); select(i, false); });
    g.addEventListener('mouseenter', () => focus(i));
    g.addEventListener('mouseleave', () => focus(selected));
    nodeGroup.append(g);
    return g;
  });

  // ------------------------------------------------------------- filter and focus
  const slider = document.getElementById('min-weight');
  const residualBox = document.getElementById('show-residual');
  const sliderToWeight = v => (Number(v) === 0 ? 0 : minW * Math.pow(maxW / minW, Number(v) / 1000));
  const DEFAULT_SHOWN = 1500;
  if (weights.length > DEFAULT_SHOWN) {
    const cut = [...weights].sort((a, b) => b - a)[DEFAULT_SHOWN - 1];
    slider.value = String(Math.round(1000 * Math.log(cut / minW) / Math.log(maxW / minW)));
  }
  residualBox.checked = links.filter(l => !l.weighted).length <= 600;
  function applyFilter() {
    const threshold = sliderToWeight(slider.value);
    let shown = 0;
    for (const l of links) {
      const visible = l.weighted ? Math.abs(l.w) >= threshold : residualBox.checked;
      l.path.style.display = visible ? '' : 'none';
      if (l.weighted && visible) shown += 1;
    }
    document.getElementById('weight-label').textContent =
      `|w| ≥ ${fmt(threshold)}: ${shown} of ${weights.length} weight links`;
  }
  slider.addEventListener('input', applyFilter);
  residualBox.addEventListener('change', applyFilter);
  applyFilter();

  let selected = null;
  function focus(i) {
    canvas.querySelectorAll('.hot').forEach(e => e.classList.remove('hot'));
    canvas.classList.toggle('focused', i !== null);
    if (i === null) return;
    nodeEls[i].classList.add('hot');
    for (const li of incident[i]) {
      links[li].path.classList.add('hot');
      nodeEls[links[li].s].classList.add('hot');
      nodeEls[links[li].t].classList.add('hot');
    }
  }

  // --------------------------------------------------------------- pan and zoom
  let view = { x: 0, y: 0, k: 1 };
  const applyView = () => viewport.setAttribute('transform', `translate(${view.x},${view.y}) scale(${view.k})`);
  function fit() {
    const box = viewport.getBBox(), w = canvas.clientWidth || 800, h = canvas.clientHeight || 600;
    const k = Math.min(w / (box.width + 40), h / (box.height + 40), small ? 2 : 1.5);
    view = { k, x: (w - box.width * k) / 2 - box.x * k, y: (h - box.height * k) / 2 - box.y * k };
    applyView();
  }
  function zoomAt(factor, cx, cy) {
    const k = Math.min(20, Math.max(0.05, view.k * factor));
    view.x = cx - (cx - view.x) * (k / view.k);
    view.y = cy - (cy - view.y) * (k / view.k);
    view.k = k;
    applyView();
  }
  canvas.addEventListener('wheel', e => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoomAt(Math.exp(-e.deltaY / 500), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  let drag = null;
  canvas.addEventListener('mousedown', e => { drag = [e.clientX - view.x, e.clientY - view.y]; canvas.classList.add('dragging'); });
  window.addEventListener('mousemove', e => {
    if (!drag) return;
    view.x = e.clientX - drag[0]; view.y = e.clientY - drag[1]; applyView();
  });
  window.addEventListener('mouseup', () => { drag = null; canvas.classList.remove('dragging'); });
  document.getElementById('zoom-in').addEventListener('click', () => zoomAt(1.25, canvas.clientWidth / 2, canvas.clientHeight / 2));
  document.getElementById('zoom-out').addEventListener('click', () => zoomAt(0.8, canvas.clientWidth / 2, canvas.clientHeight / 2));
  document.getElementById('fit').addEventListener('click', fit);
  function centerOn(i) {
    const [x, y] = pos[i];
    view.k = Math.max(view.k, 1);
    view.x = canvas.clientWidth / 2 - x * view.k;
    view.y = canvas.clientHeight / 2 - y * view.k;
    applyView();
  }

  // --------------------------------------------------------------------- search
  const names = document.getElementById('node-names');
  kept.forEach(n => names.append(el('option', { value: n.name })));
  const search = document.getElementById('search');
  function find() {
    const q = search.value.trim().toLowerCase();
    if (!q) return;
    let i = G.nodes.findIndex(n => n.name.toLowerCase() === q);
    if (i < 0) i = G.nodes.findIndex(n => n.name.toLowerCase().includes(q));
    search.setCustomValidity(i < 0 ? 'no node matches' : '');
    search.reportValidity();
    if (i >= 0) select(i, true);
  }
  search.addEventListener('change', find);
  search.addEventListener('keydown', e => { if (e.key === 'Enter') find(); });

  // ------------------------------------------------------------------ node panel
  const panel = document.getElementById('panel');
  const colourOf = (a, scale) => {
    const x = Math.min(1, Math.abs(a) / (scale || 1));
    return a >= 0 ? `rgba(214,39,40,${(0.85 * x).toFixed(3)})` : `rgba(31,119,180,${(0.85 * x).toFixed(3)})`;
  };
  function strip(tokens, values, focusAt, scale, value, extra) {
    const row = el('div', { class: 'strip' });
    if (value !== undefined) row.append(el('span', { class: 'val num', text: fmt(value) }));
    tokens.forEach((t, j) => {
      const span = el('span', { class: 'tok' + (j === focusAt ? ' focus' : ''), text: tokenText(t), title: fmt(values[j]) });
      span.style.background = colourOf(values[j], scale);
      row.append(span);
    });
    if (extra) row.append(extra);
    return row;
  }
  function edgeTable(list, other, cls) {
    const table = el('table', { class: `edges ${cls}` });
    const sorted = [...list].sort((a, b) => Math.abs(b.w ?? 0) - Math.abs(a.w ?? 0));
    sorted.slice(0, 60).forEach(l => table.append(el('tr', {},
      el('td', {}, nodeLink(other(l))), el('td', { text: KIND_TEXT[l.kind] || l.kind }),
      el('td', { class: 'num weight', text: l.w === null ? '' : fmt(l.w) }))));
    if (sorted.length > 60) table.append(el('tr', {}, el('td', { colspan: 3, class: 'note', text: `… ${sorted.length - 60} more` })));
    return table;
  }
  function describe(n) {
    if (n.location === 'embed') return `embedding: residual channel ${n.index}`;
    if (n.location === 'unembed') return `unembedding of the task's candidate token ${n.index}`;
    const [layer, ...rest] = n.location.split('.');
    return `layer ${layer}, ${PART_TEXT[rest.join('.')] || rest.join('.')} ${n.index}`;
  }
  function renderPanel(i) {
    const n = G.nodes[i];
    panel.replaceChildren(el('h3', { id: 'node-name', text: n.name }), el('div', { class: 'sub', text: describe(n) }));
    const kv = el('table', { class: 'kv' });
    if (n.ablation_value !== undefined) {
      const how = ((D.settings || {}).ablation || 'mean') + '-ablation value';
      kv.append(el('tr', {}, el('th', { text: how }), el('td', { class: 'num', id: 'node-ablation-value', text: fmt(n.ablation_value) })));
    }
    if (ablation && ablation.without_node[n.id] !== undefined) {
      kv.append(el('tr', {}, el('th', { text: 'test loss of the circuit without it' }),
        el('td', { class: 'num', id: 'node-without-loss', text: fmt(ablation.without_node[n.id]) })));
    }
    panel.append(kv);
    const ins = incident[i].map(li => links[li]).filter(l => l.t === i);
    const outs = incident[i].map(li => links[li]).filter(l => l.s === i);
    panel.append(el('h4', { text: `In-edges (${ins.length})` }), edgeTable(ins, l => l.s, 'in-edges'));
    panel.append(el('h4', { text: `Out-edges (${outs.length})` }), edgeTable(outs, l => l.t, 'out-edges'));
    const ex = acts.nodes[n.id];
    if (!ex) {
      if (n.location !== 'embed' && n.location !== 'unembed') {
        panel.append(el('p', { class: 'note', text: 'No activation examples stored: ' + (acts.skipped || 'none for this node') }));
      }
      return;
    }
    const pre = [...ex.top, ...ex.bottom];
    const scale = Math.max(1e-12, ...pre.flatMap(s => s.acts.map(Math.abs)));
    const note = `colour: red positive, blue negative, full colour at |a| = ${fmt(scale)}; boxed: the example's token`;
    for (const [side, title] of [['top', 'Top activations'], ['bottom', 'Bottom activations']]) {
      const box = el('div', { class: `examples examples-${side}` });
      ex[side].forEach(s => box.append(strip(s.tokens, s.acts, s.focus, scale, s.acts[s.focus])));
      if (!ex[side].length) box.append(el('p', { class: 'note', text: side === 'top' ? 'never positive on these rows' : 'never negative on these rows' }));
      panel.append(el('h4', { text: `${title} on pretraining text (${ex[side].length}, of ${acts.pretraining_rows} rows)` }), box);
    }
    panel.append(el('p', { class: 'note', text: note }));
    if (ex.task.length) {
      const tscale = Math.max(1e-12, ...ex.task.flat(2).map(Math.abs));
      const table = el('table', { class: 'pairs task-examples' });
      table.append(el('tr', {}, el('th', { text: 'prompt A' }), el('th', { text: 'prompt B' })));
      ex.task.forEach((pair, p) => {
        const row = el('tr', {});
        pair.forEach((values, side) => {
          const prompt = acts.task_prompts[p][side];
          const answer = el('span', { class: 'answer', text: `→ ${JSON.stringify(tokenText(prompt.answer))}` });
          row.append(el('td', {}, strip(prompt.tokens, values, prompt.tokens.length - 1, tscale, undefined, answer)));
        });
        table.append(row);
      });
      panel.append(el('h4', { text: `On the task: both prompts of ${ex.task.length} test pairs, in the circuit` }), table,
        el('p', { class: 'note', text: `full colour at |a| = ${fmt(tscale)}; boxed: where the answer is read; → the correct token` }));
    }
  }
  function select(i, center) {
    if (selected !== null) nodeEls[selected].classList.remove('selected');
    selected = i;
    nodeEls[i].classList.add('selected');
    focus(i);
    renderPanel(i);
    if (center) centerOn(i);
  }
  canvas.addEventListener('click', e => {
    if (e.target === canvas && selected !== null) { nodeEls[selected].classList.remove('selected'); selected = null; focus(null); }
  });

  // ------------------------------------------------------------- ablation view
  const section = document.getElementById('ablation');
  section.append(el('h3', { text: 'Which nodes matter: test loss with one node removed' }));
  const rows = [['full model', L.full_model, 'abl-full'], ['circuit', L.circuit, 'abl-circuit']];
  const table = el('table', { class: 'bars' });
  const entries = ablation ? Object.entries(ablation.without_node).sort((a, b) => b[1] - a[1]) : [];
  const longest = Math.max(1e-12, ...rows.map(r => r[1] ?? 0), ...entries.map(e => e[1]));
  const bar = v => el('span', { class: 'bar', style: `width:${(300 * Math.max(0, v ?? 0) / longest).toFixed(1)}px` });
  rows.forEach(([label, v, id]) => table.append(el('tr', { class: 'ref' }, el('td', { text: label }),
    el('td', { class: 'num', id, text: fmt(v) }), el('td', {}, bar(v)))));
  const index = new Map(G.nodes.map((n, i) => [n.id, i]));
  entries.forEach(([id, v]) => {
    const i = index.get(id);
    const row = el('tr', { class: 'node-row', 'data-node': id }, el('td', { text: `circuit − ${G.nodes[i].name}` }),
      el('td', { class: 'num', text: fmt(v) }), el('td', {}, bar(v)));
    row.addEventListener('click', () => select(i, true));
    table.append(row);
  });
  section.append(table);
  if (!ablation) {
    const cap = ((D.settings || {}).viewer || {}).ablate_each_max_nodes;
    section.append(el('p', { class: 'note', text: `Per-node losses are stored for circuits of at most ${cap ?? '?'} nodes (prune.viewer.ablate_each_max_nodes); this one has ${kept.length}.` }));
  }

  fit();
  window.addEventListener('resize', fit);
})();
