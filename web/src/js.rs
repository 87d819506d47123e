//! The few browser services the session needs: a clock, timers, a way to let the page
//! repaint, random numbers, and reading fields of option objects.

use js_sys::{Function, Object, Promise, Reflect};
use sluice_core::{Error, Result};
use std::cell::Cell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(callback: &Function, ms: i32) -> JsValue;
}

/// Milliseconds from the page's time origin (the generation loop's clock).
pub fn now_ms() -> f64 {
    performance_now()
}

/// Resolves after `ms` milliseconds.
pub async fn sleep(ms: i32) {
    let promise = Promise::new(&mut |resolve, _reject| {
        set_timeout(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}

/// Resolves on the next task: lets the page repaint and handle input (a `stop()` click).
/// A message to a fresh `MessageChannel` is not throttled the way nested timers are.
pub async fn next_task() {
    let promise = Promise::new(
        &mut |resolve, _reject| match web_sys::MessageChannel::new() {
            Ok(channel) => {
                channel.port1().set_onmessage(Some(&resolve));
                if channel.port2().post_message(&JsValue::UNDEFINED).is_err() {
                    set_timeout(&resolve, 0);
                }
            }
            Err(_) => {
                set_timeout(&resolve, 0);
            }
        },
    );
    let _ = JsFuture::from(promise).await;
}

thread_local! {
    static LAST_YIELD: Cell<f64> = const { Cell::new(0.0) };
}

/// A future to await when the page has not had a turn for `every_ms`; `None` otherwise.
pub fn yield_if_due(every_ms: f64) -> Option<sluice_core::source::LocalBoxFuture<'static, ()>> {
    let now = now_ms();
    LAST_YIELD.with(|last| {
        if now - last.get() < every_ms {
            return None;
        }
        last.set(now);
        Some(Box::pin(next_task()) as sluice_core::source::LocalBoxFuture<'static, ()>)
    })
}

/// A random 32-bit seed (for `seed: -1`, like the CLI's time-based fallback).
pub fn random_seed() -> u32 {
    (js_sys::Math::random() * 4_294_967_296.0) as u32
}

/// The text of a thrown JavaScript value.
pub fn describe(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}

/// Reads optional fields of a plain options object, with errors naming the field.
pub struct Options {
    object: Option<Object>,
    context: &'static str,
}

impl Options {
    /// `value` may be `undefined`/`null` (all defaults) or an object.
    pub fn new(value: &JsValue, context: &'static str) -> Result<Options> {
        if value.is_undefined() || value.is_null() {
            return Ok(Options {
                object: None,
                context,
            });
        }
        match value.dyn_ref::<Object>() {
            Some(o) => Ok(Options {
                object: Some(o.clone()),
                context,
            }),
            None => Err(Error::Invalid(format!("{context} must be an object"))),
        }
    }

    fn raw(&self, key: &str) -> Option<JsValue> {
        let object = self.object.as_ref()?;
        Reflect::get(object, &JsValue::from_str(key))
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_null())
    }

    fn invalid(&self, key: &str, what: &str) -> Error {
        Error::Invalid(format!("{}.{key} must be {what}", self.context))
    }

    pub fn number(&self, key: &str) -> Result<Option<f64>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if n.is_finite() => Ok(Some(n)),
                _ => Err(self.invalid(key, "a finite number")),
            },
        }
    }

    /// A whole number in `min..=max`.
    pub fn integer(&self, key: &str, min: f64, max: f64) -> Result<Option<i64>> {
        match self.number(key)? {
            None => Ok(None),
            Some(n) if n.fract() == 0.0 && (min..=max).contains(&n) => Ok(Some(n as i64)),
            Some(_) => Err(self.invalid(key, &format!("a whole number from {min} to {max}"))),
        }
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.invalid(key, "true or false")),
        }
    }

    pub fn string(&self, key: &str) -> Result<Option<String>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v
                .as_string()
                .map(Some)
                .ok_or_else(|| self.invalid(key, "a string")),
        }
    }

    pub fn function(&self, key: &str) -> Result<Option<Function>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v
                .dyn_into::<Function>()
                .map(Some)
                .map_err(|_| self.invalid(key, "a function")),
        }
    }
}

/// Sets `object[key] = value` on a plain object being built for JavaScript.
pub fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(object, &JsValue::from_str(key), &value.into());
}
