//! `#[rpyc::service]`: implements `rpyc::Exposed` for the type of an `impl` block, so that a
//! peer can call its methods. Use it through the `rpyc` crate (`rpyc::service`).

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    parse_macro_input, Expr, ExprLit, FnArg, ImplItem, ItemImpl, Lit, Meta, Pat, ReturnType, Token,
    Type,
};

/// See `rpyc::service`.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let imp = parse_macro_input!(item as ItemImpl);
    match expand(attr.into(), imp) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

struct Method {
    name: syn::Ident,
    params: Vec<(syn::Ident, Type)>,
    returns_result: bool,
    /// An `async fn`: awaited by the tokio server, run to completion by `rpyc::block_on`
    /// for synchronous callers (the threaded server).
    is_async: bool,
}

fn expand(attr: TokenStream2, imp: ItemImpl) -> syn::Result<TokenStream2> {
    if let Some((_, path, _)) = &imp.trait_ {
        return Err(syn::Error::new(
            path.span(),
            "#[rpyc::service] goes on an inherent impl block (`impl MyType { ... }`), not a trait impl",
        ));
    }
    let self_ty = &imp.self_ty;
    let mut class_name: Option<String> = None;
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    for meta in metas {
        match meta {
            Meta::NameValue(nv) if nv.path.is_ident("name") => match nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => class_name = Some(s.value()),
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "expected a string: #[rpyc::service(name = \"module.Class\")]",
                    ))
                }
            },
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "unknown argument; the only one is name = \"module.Class\"",
                ))
            }
        }
    }
    let type_name = match class_name {
        Some(n) => quote!(::std::string::String::from(#n)),
        None => {
            let ty = quote!(#self_ty).to_string().replace(' ', "");
            let n = format!("rust.{ty}");
            quote!(::std::string::String::from(#n))
        }
    };

    let mut methods = Vec::new();
    for item in &imp.items {
        let ImplItem::Fn(f) = item else { continue };
        let sig = &f.sig;
        let name = sig.ident.clone();
        if name.to_string().starts_with('_') {
            continue;
        }
        let mut inputs = sig.inputs.iter();
        match inputs.next() {
            Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
            Some(FnArg::Receiver(r)) => {
                return Err(syn::Error::new(
                    r.span(),
                    "an exposed method takes &self (the peer may call it from several \
                     connections at once; use interior mutability such as Mutex for state), \
                     or name it with a leading _ to keep it private",
                ))
            }
            _ => continue, // an associated function: not exposed
        }
        if !sig.generics.params.is_empty() {
            return Err(syn::Error::new(
                sig.span(),
                "an exposed method cannot be generic (name it with a leading _ to keep it private)",
            ));
        }
        let mut params = Vec::new();
        for (i, input) in inputs.enumerate() {
            let FnArg::Typed(pt) = input else { continue };
            let ident = match &*pt.pat {
                Pat::Ident(p) => p.ident.clone(),
                _ => format_ident!("arg{}", i),
            };
            params.push((ident, (*pt.ty).clone()));
        }
        let returns_result = match &sig.output {
            ReturnType::Default => false,
            ReturnType::Type(_, ty) => is_result(ty),
        };
        methods.push(Method {
            name,
            params,
            returns_result,
            is_async: sig.asyncness.is_some(),
        });
    }

    let names: Vec<String> = methods.iter().map(|m| m.name.to_string()).collect();
    let arms = methods.iter().map(|m| {
        let fstr = m.name.to_string();
        let (bind, idents) = binding(m);
        let call = invoke(m, &idents, quote!(self));
        let call = if m.is_async {
            // (Synchronous callers: run the future to completion on this thread.)
            quote!(::rpyc::block_on(async { #call })?)
        } else {
            call
        };
        quote! {
            #fstr => {
                #bind
                #call
            }
        }
    });
    let async_names: Vec<String> = methods
        .iter()
        .filter(|m| m.is_async)
        .map(|m| m.name.to_string())
        .collect();
    let async_items = if async_names.is_empty() {
        quote!()
    } else {
        let async_arms = methods.iter().filter(|m| m.is_async).map(|m| {
            let fstr = m.name.to_string();
            let (bind, idents) = binding(m);
            let call = invoke(m, &idents, quote!(__this));
            quote! {
                #fstr => ::std::boxed::Box::pin(async move {
                    let __this = &*self;
                    #bind
                    #call
                }),
            }
        });
        quote! {
            fn async_method(&self, __name: &str) -> bool {
                ::std::matches!(__name, #(#async_names)|*)
            }

            #[allow(unused_mut, unused_variables, clippy::let_unit_value, clippy::unit_arg)]
            fn call_method_async(
                self: ::std::sync::Arc<Self>,
                __name: ::std::string::String,
                __args: ::rpyc::Args,
            ) -> ::rpyc::MethodFuture {
                match __name.as_str() {
                    #(#async_arms)*
                    _ => ::std::boxed::Box::pin(async move {
                        ::rpyc::Exposed::call_method(&*self, &__name, __args)
                    }),
                }
            }
        }
    };
    let (impl_generics, _, where_clause) = imp.generics.split_for_impl();

    Ok(quote! {
        #imp

        impl #impl_generics ::rpyc::Exposed for #self_ty #where_clause {
            fn type_name(&self) -> ::std::string::String {
                #type_name
            }

            fn methods(&self) -> ::std::vec::Vec<&'static str> {
                ::std::vec![#(#names),*]
            }

            #[allow(unused_mut, unused_variables, clippy::let_unit_value, clippy::unit_arg)]
            fn call_method(
                &self,
                __name: &str,
                __args: ::rpyc::Args,
            ) -> ::rpyc::Result<::rpyc::Value> {
                match __name {
                    #(#arms)*
                    _ => ::std::result::Result::Err(::rpyc::Error::attribute_error(
                        ::std::format!("'{}' object has no attribute '{}'", ::rpyc::Exposed::type_name(self), __name),
                    )),
                }
            }

            #async_items
        }
    })
}

/// The statements that bind `__args` to the method's parameters (converted with
/// `FromValue`; a mismatch is the caller's `TypeError`), and the names they bind.
fn binding(m: &Method) -> (TokenStream2, Vec<syn::Ident>) {
    let fstr = m.name.to_string();
    let pnames: Vec<String> = m.params.iter().map(|(p, _)| p.to_string()).collect();
    let idents: Vec<syn::Ident> = (0..m.params.len())
        .map(|i| format_ident!("__a{}", i))
        .collect();
    let convs = m
        .params
        .iter()
        .zip(&idents)
        .zip(&pnames)
        .map(|(((_, ty), id), pn)| {
            quote! {
                let #id: #ty = ::rpyc::arg::<#ty>(#fstr, #pn, __it.next().unwrap_or_default())?;
            }
        });
    let bind = quote! {
        let mut __it = __args.bind(#fstr, &[#(#pnames),*])?.into_iter();
        #(#convs)*
    };
    (bind, idents)
}

/// The call of the method on `recv` and the conversion of what it returns into
/// `rpyc::Result<rpyc::Value>` (awaited, for an `async fn`).
fn invoke(m: &Method, idents: &[syn::Ident], recv: TokenStream2) -> TokenStream2 {
    let fname = &m.name;
    let called = if m.is_async {
        quote!(#recv.#fname(#(#idents),*).await)
    } else {
        quote!(#recv.#fname(#(#idents),*))
    };
    if m.returns_result {
        quote! {
            {
                let __r = #called.map_err(::std::convert::Into::<::rpyc::Error>::into)?;
                ::std::result::Result::<::rpyc::Value, ::rpyc::Error>::Ok(::rpyc::Value::from(__r))
            }
        }
    } else {
        quote! {
            ::std::result::Result::<::rpyc::Value, ::rpyc::Error>::Ok(::rpyc::Value::from(#called))
        }
    }
}

/// Whether a return type is a `Result<..>` (by its last path segment: `Result`,
/// `rpyc::Result`, `std::io::Result`...).
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        Type::Paren(p) => is_result(&p.elem),
        Type::Group(g) => is_result(&g.elem),
        _ => false,
    }
}
