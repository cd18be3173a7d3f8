"""The command line's page controls (beside the picture of :class:`.sinks.PageServer`, 127.0.0.1):
a slider per live setting over its fader span, the layer list, the text settings, a button per scene.

``GET /controls`` is the state as JSON; ``POST /set`` takes ``{"name": SETTING, "value": VALUE}`` or
``{"scene": NAME}`` and answers ``{"ok": true|false, "line": "..."}`` (a refusal is one line, as
over OSC). A slider sends when let go.
"""

from __future__ import annotations

import json

from ..errors import UserError
from .control import KNOBS

SCRIPT = r"""(async()=>{
const box=document.getElementById('controls');
box.style.cssText='display:flex;flex-wrap:wrap;gap:8px 18px;justify-content:center;padding:8px;text-align:left';
const say=document.createElement('div');say.id='said';say.style.cssText='width:100%;text-align:center;min-height:1.2em';
async function send(body){const r=await fetch('/set',{method:'POST',headers:{'Content-Type':'application/json'},
 body:JSON.stringify(body)});const j=await r.json();say.textContent=j.line;return j}
const st=await (await fetch('/controls')).json();
for(const k of st.knobs){
 const row=document.createElement('label');row.style.cssText='display:flex;gap:6px;align-items:center';
 row.append(k.name+' ');
 if(k.span){const s=document.createElement('input');s.type='range';s.name=k.name;s.id='slider-'+k.name;
  s.min=k.span[0];s.max=k.span[1];s.step=k.integer?1:(k.span[1]-k.span[0])/1000;
  const v=parseFloat(k.value);if(!isNaN(v))s.value=v;const out=document.createElement('output');out.textContent=k.value;
  s.oninput=()=>{out.textContent=s.value};s.onchange=()=>send({name:k.name,value:s.value});row.append(s,out)}
 else{const t=document.createElement('input');t.name=k.name;t.id='text-'+k.name;t.value=k.value;t.size=28;
  if(k.name==='layers'){t.setAttribute('list','layer-list');
   const dl=document.createElement('datalist');dl.id='layer-list';
   for(const l of st.layers){const o=document.createElement('option');o.value=l;dl.append(o)}row.append(dl)}
  t.onchange=()=>send({name:k.name,value:t.value});row.append(t)}
 box.append(row)}
if(st.scenes.length){const row=document.createElement('div');row.append('scenes ');
 for(const n of st.scenes){const b=document.createElement('button');b.textContent=n;b.id='scene-'+n;
  b.onclick=()=>send({scene:n});row.append(b)}box.append(row)}
box.append(say)})();"""


class PageControls:
    """The page's control routes over ``controls`` (:class:`.control.Controls`); ``layers``: names
    offered in the layer list."""

    def __init__(self, controls, layers=()):
        self.controls, self.layers = controls, list(layers)

    def state(self) -> dict:
        c = self.controls
        knobs = [{"name": k.name, "value": c.values.get(k.name, ""), "span": list(k.span) if k.span else None,
                  "integer": k.integer} for k in KNOBS.values() if k.name in c.values]
        return {"knobs": knobs, "scenes": list(c.scenes), "scene": c.scene_name, "message": c.message,
                "layers": self.layers}

    def get(self, path: str):
        if path == "/controls.js":
            return "text/javascript; charset=utf-8", SCRIPT.encode()
        if path == "/controls":
            return "application/json", json.dumps(self.state()).encode()
        return None

    def post(self, path: str, body: bytes):
        if path != "/set":
            return None
        try:
            req = json.loads(body.decode("utf-8") or "{}")
            if not isinstance(req, dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            return "application/json", json.dumps({"ok": False, "line": "send JSON: {\"name\": ..., \"value\": ...}"
                                                   " or {\"scene\": ...}"}).encode()
        try:
            if "scene" in req:
                line = self.controls.scene(req["scene"], via="page")
            else:
                line = self.controls.set(req.get("name", ""), req.get("value", ""), via="page")
            answer = {"ok": True, "line": line}
        except UserError as e:
            answer = {"ok": False, "line": str(e)}
        return "application/json", json.dumps(answer).encode()
